// The terminal page's files (docs/files.md): a side panel listing a directory of the terminal's
// machine (GET .../files?path=P&list=1), entered by a click, left by "..", a file downloaded by a
// plain <a download> (the session cookie authorises the GET), and uploads: files dropped on the
// terminal or picked with Upload go to the directory shown (PUT .../files?path=DIR/NAME), each
// with its own progress bar and Cancel. XMLHttpRequest rather than fetch: it reports upload
// progress, and abort() closes the request, which makes the hub cancel and keep nothing.
import { ApiError, api, errorMessage } from "./api";
import { bytes, h, localTime } from "./dom";

interface Entry {
  name: string;
  size: number;
  mode: number;
  is_dir: boolean;
  mtime: number;
}

interface Listing {
  path: string;
  entries: Entry[];
}

export interface FilesPanel {
  element: HTMLElement;
  toggle(open?: boolean): void;
  dispose(): void;
}

// The home directory, as the API takes it: paths are relative to it, and an empty one is refused.
const HOME = ".";

// DIR/NAME without doubling a slash; HOME/NAME is just NAME.
function join(dir: string, name: string): string {
  if (dir === HOME) return name;
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

// One level up, worked out here: the API refuses ".." (a path means what it says). Null at the
// top: "/" and the home directory (whose absolute place the API does not say).
function parent(dir: string): string | null {
  if (dir === HOME || dir === "/") return null;
  const trimmed = dir.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return HOME;
  return slash === 0 ? "/" : trimmed.slice(0, slash);
}

// A path as typed: "~", "~/x" and "" mean the home directory (and under it); trailing slashes and
// "." components are dropped, since they add nothing.
function normalise(typed: string): string {
  let p = typed.trim();
  if (p === "" || p === "~" || p === "~/") return HOME;
  if (p.startsWith("~/")) p = p.slice(2);
  const absolute = p.startsWith("/");
  const parts = p.split("/").filter((c) => c !== "" && c !== ".");
  if (!parts.length) return absolute ? "/" : HOME;
  return (absolute ? "/" : "") + parts.join("/");
}

function filesUrl(terminal: string, path: string, extra = ""): string {
  return `/api/v1/terminals/${encodeURIComponent(terminal)}/files?path=${encodeURIComponent(path)}${extra}`;
}

function modeText(mode: number, dir: boolean): string {
  const bits = "rwxrwxrwx";
  let s = dir ? "d" : "-";
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : "-";
  return s;
}

export function filesPanel(terminal: string, dropZone: HTMLElement, onToggle?: (open: boolean) => void): FilesPanel {
  const pathInput = h("input", { type: "text", class: "files-path mono", "aria-label": "Directory", spellcheck: "false", autocomplete: "off", "data-testid": "files-path" });
  const list = h("ul", { class: "files-list", "data-testid": "files-list" });
  const status = h("p", { class: "files-status muted small", "aria-live": "polite" });
  const picker = h("input", { type: "file", multiple: true, hidden: true, "data-testid": "upload-input" });
  const uploadButton = h("button", { type: "button", text: "Upload…", title: "Upload files into this directory (or drop them on the terminal)", "data-testid": "upload-button" });
  const refresh = h("button", { type: "button", class: "ghost", text: "↻", title: "Reload", "aria-label": "Reload", "data-testid": "files-refresh" });
  const close = h("button", { type: "button", class: "ghost", text: "×", title: "Close", "aria-label": "Close files" });
  const uploads = h("ul", { class: "uploads", "data-testid": "uploads" });
  const go = h("form", { class: "files-go" }, pathInput);
  const element = h(
    "aside",
    { class: "files-panel", hidden: true, "aria-label": "Files", "data-testid": "files-panel" },
    h("header", { class: "files-head" }, h("h2", { text: "Files" }), h("span", { class: "spacer" }), uploadButton, refresh, close),
    go,
    status,
    list,
    uploads,
    picker,
  );
  const overlay = h("div", { class: "drop-overlay", hidden: true, "data-testid": "drop-overlay" });
  dropZone.append(overlay);

  let dir = HOME;
  let loading = 0; // the newest listing asked for: an older answer arriving late is dropped
  const live = new Set<XMLHttpRequest>();

  const show = async (target: string) => {
    const ticket = ++loading;
    pathInput.value = target === HOME ? "~" : target;
    status.textContent = "Loading…";
    let listing: Listing;
    try {
      listing = await api<Listing>("GET", `/terminals/${encodeURIComponent(terminal)}/files?path=${encodeURIComponent(target)}&list=1`);
    } catch (err) {
      if (ticket !== loading) return;
      status.textContent = errorMessage(err);
      status.dataset.tone = "error";
      list.replaceChildren();
      element.dataset.dir = target;
      dir = target;
      return;
    }
    if (ticket !== loading) return;
    dir = target;
    element.dataset.dir = target;
    delete status.dataset.tone;
    const entries = [...listing.entries].sort((a, b) => Number(b.is_dir) - Number(a.is_dir));
    status.textContent = entries.length ? "" : "Empty directory";
    const up = parent(target);
    const rows: HTMLElement[] = [];
    if (up !== null) {
      rows.push(h("li", {}, h("button", { type: "button", class: "link files-dir", text: "..", title: "Up one level", "data-testid": "files-up", onclick: () => void show(up) })));
    }
    for (const e of entries) {
      const path = join(target, e.name);
      const meta = h("span", { class: "files-meta muted small", title: `${modeText(e.mode, e.is_dir)} · ${localTime(e.mtime)}`, text: e.is_dir ? "" : bytes(e.size) });
      const link = e.is_dir
        ? h("button", { type: "button", class: "link files-dir", text: e.name + "/", onclick: () => void show(path) })
        : h("a", { href: filesUrl(terminal, path), download: e.name, class: "files-file", text: e.name, title: `Download ${e.name}` });
      rows.push(h("li", { "data-testid": "file-entry", "data-name": e.name, "data-dir": e.is_dir ? "true" : "false" }, link, meta));
    }
    list.replaceChildren(...rows);
  };

  const upload = (file: File, into: string, overwrite = false) => {
    const path = join(into, file.name);
    const bar = h("progress", { max: 1, value: 0 });
    const text = h("span", { class: "upload-text muted small", text: `0 of ${bytes(file.size)}` });
    const cancel = h("button", { type: "button", class: "ghost", text: "Cancel", "data-testid": "upload-cancel" });
    const row = h(
      "li",
      { class: "upload", "data-testid": "upload", "data-name": file.name, "data-state": "uploading" },
      h("div", { class: "upload-line" }, h("span", { class: "upload-name", text: file.name, title: path }), cancel),
      bar,
      text,
    );
    uploads.append(row);
    const xhr = new XMLHttpRequest();
    live.add(xhr);
    const end = (state: string, message: string, actions: HTMLElement[] = []) => {
      live.delete(xhr);
      row.dataset.state = state;
      text.textContent = message;
      text.classList.toggle("upload-error", state === "error" || state === "exists");
      const dismiss = h("button", { type: "button", class: "ghost", text: "×", title: "Dismiss", "aria-label": "Dismiss", onclick: () => row.remove() });
      cancel.replaceWith(h("span", { class: "upload-actions" }, ...actions, dismiss));
    };
    xhr.upload.onprogress = (e) => {
      bar.value = file.size ? e.loaded / file.size : 1;
      text.textContent = `${bytes(e.loaded)} of ${bytes(file.size)}`;
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        bar.value = 1;
        end("done", `${bytes(file.size)} · done`);
        if (into === dir) void show(dir);
        return;
      }
      let err: ApiError;
      try {
        const j = JSON.parse(xhr.responseText);
        err = new ApiError(j.error || `HTTP ${xhr.status}`, xhr.status, j.code || `http_${xhr.status}`);
      } catch {
        err = new ApiError(`HTTP ${xhr.status} ${xhr.statusText}`, xhr.status, `http_${xhr.status}`);
      }
      if (err.code === "exists") {
        const again = h("button", { type: "button", class: "danger", text: "Overwrite", "data-testid": "upload-overwrite" });
        again.onclick = () => {
          row.remove();
          upload(file, into, true);
        };
        end("exists", `${file.name} is already there. Overwrite it?`, [again]);
      } else {
        end("error", err.message);
      }
    };
    xhr.onerror = () => end("error", "The upload failed: the hub cannot be reached");
    xhr.onabort = () => end("cancelled", "Cancelled: nothing was kept");
    cancel.onclick = () => xhr.abort();
    xhr.open("PUT", filesUrl(terminal, path, overwrite ? "&overwrite=1" : ""));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.send(file);
  };

  const uploadAll = (files: FileList | File[]) => {
    if (!files.length) return;
    toggle(true);
    for (const f of Array.from(files)) upload(f, dir);
  };

  // Only a drag that carries files is ours: text dragged over the terminal is left to xterm.
  const carriesFiles = (e: DragEvent) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const onEnter = (e: DragEvent) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    depth++;
    overlay.textContent = `Drop to upload to ${dir === HOME ? "your home directory" : dir}`;
    overlay.hidden = false;
  };
  const onOver = (e: DragEvent) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer!.dropEffect = "copy";
  };
  const onLeave = (e: DragEvent) => {
    if (!carriesFiles(e)) return;
    if (--depth <= 0) {
      depth = 0;
      overlay.hidden = true;
    }
  };
  const onDrop = (e: DragEvent) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    uploadAll(e.dataTransfer!.files);
  };
  dropZone.addEventListener("dragenter", onEnter);
  dropZone.addEventListener("dragover", onOver);
  dropZone.addEventListener("dragleave", onLeave);
  dropZone.addEventListener("drop", onDrop);

  uploadButton.onclick = () => picker.click();
  picker.onchange = () => {
    uploadAll(Array.from(picker.files ?? []));
    picker.value = "";
  };
  refresh.onclick = () => void show(dir);
  go.addEventListener("submit", (e) => {
    e.preventDefault();
    void show(normalise(pathInput.value));
  });

  let shown = false;
  const toggle = (open = element.hidden) => {
    element.hidden = !open;
    onToggle?.(open);
    if (open && !shown) {
      shown = true;
      void show(dir);
    }
  };
  close.onclick = () => toggle(false);

  return {
    element,
    toggle,
    dispose() {
      for (const xhr of live) xhr.abort();
      dropZone.removeEventListener("dragenter", onEnter);
      dropZone.removeEventListener("dragover", onOver);
      dropZone.removeEventListener("dragleave", onLeave);
      dropZone.removeEventListener("drop", onDrop);
      overlay.remove();
    },
  };
}
