// /t/{id}: one terminal filling the window, with a slim bar on top.
import { api, lastingError, Terminal, wsBase } from "./api";
import { h } from "./dom";
import { filesPanel } from "./files_panel";
import type { Page } from "./main";
import { mountTerminal } from "./terminal_view";
import { toast, toastError } from "./toast";

const FONT_KEY = "rexec.fontSize";
const FONT_MIN = 8;
const FONT_MAX = 32;

declare global {
  interface Window {
    __rexec?: { term: import("@xterm/xterm").Terminal };
  }
}

export function terminalPage(root: HTMLElement, id: string): Page {
  const light = h("span", { class: "light" });
  const name = h("strong", { class: "term-name", text: id });
  const badge = h("span", { class: "badge wide-only", hidden: true });
  const viewers = h("span", { class: "muted small viewers" });
  const size = h("span", { class: "font-size", "aria-live": "polite" });
  const smaller = h("button", { type: "button", class: "ghost", text: "A−", title: "Smaller text", "aria-label": "Smaller text", "data-testid": "font-smaller" });
  const larger = h("button", { type: "button", class: "ghost", text: "A+", title: "Larger text", "aria-label": "Larger text", "data-testid": "font-larger" });
  const filesButton = h("button", { type: "button", class: "ghost", text: "Files", title: "Browse, download and upload files (or drop files on the terminal)", "aria-expanded": "false", "data-testid": "files-button" });
  const main = h("div", { class: "term-main" });
  root.append(
    h(
      "div",
      { class: "term-page" },
      h(
        "header",
        { class: "term-bar" },
        h("a", { class: "back", href: "/", "data-testid": "back" }, "← ", h("span", { class: "wide-only", text: "Dashboard" })),
        light,
        name,
        badge,
        viewers,
        h("span", { class: "spacer" }),
        h("a", { class: "bar-link", href: `/recordings?terminal=${encodeURIComponent(id)}`, title: "This terminal's recordings", "data-testid": "recordings-link", text: "Recordings" }),
        filesButton,
        smaller,
        size,
        larger,
      ),
      main,
    ),
  );

  let fontSize = Math.min(FONT_MAX, Math.max(FONT_MIN, Number(localStorage.getItem(FONT_KEY)) || 14));
  let warnedReadOnly = false;
  const show = (status: string) => {
    light.dataset.status = status;
    light.title = status;
  };

  const view = mountTerminal(main, {
    base: wsBase(),
    terminal: id,
    fontSize,
    onStatus: show,
    onViewers: (n) => (viewers.textContent = n > 1 ? `${n} watching` : ""),
    onError: (ev) => {
      if (ev.code !== "read_only") return toast(String(ev.message ?? ev.code), "error");
      if (!warnedReadOnly) toast("This terminal is read-only for you: typing is not sent", "error");
      warnedReadOnly = true;
    },
    // Only containers stop; started again, the hub has us attach afresh.
    action: (status) =>
      status === "stopped" ? { label: "Start", run: () => api("POST", `/terminals/${encodeURIComponent(id)}/start`).catch(toastError) } : null,
    refused: () =>
      api<Terminal>("GET", `/terminals/${encodeURIComponent(id)}`).then(() => null, lastingError),
  });
  window.__rexec = { term: view.term };
  // However the panel opens (a drop opens it too), the button says so.
  const files = filesPanel(id, main, (open) => filesButton.setAttribute("aria-expanded", String(open)));
  main.append(files.element);
  filesButton.onclick = (e) => {
    files.toggle();
    if (e.detail && files.element.hidden) view.focus();
  };

  const setFont = (n: number) => {
    fontSize = Math.min(FONT_MAX, Math.max(FONT_MIN, n));
    localStorage.setItem(FONT_KEY, String(fontSize));
    size.textContent = String(fontSize);
    smaller.disabled = fontSize <= FONT_MIN;
    larger.disabled = fontSize >= FONT_MAX;
    view.setFontSize(fontSize);
  };
  // A mouse click hands the keyboard back to the terminal; a key press stays on the button.
  smaller.onclick = (e) => {
    setFont(fontSize - 1);
    if (e.detail) view.focus();
  };
  larger.onclick = (e) => {
    setFont(fontSize + 1);
    if (e.detail) view.focus();
  };
  setFont(fontSize);

  api<Terminal>("GET", `/terminals/${encodeURIComponent(id)}`).then((t) => {
    name.textContent = t.name || t.id;
    document.title = `${t.name || t.id} · Rexec`;
    badge.textContent = t.kind === "container" && t.image ? `container · ${t.image}` : t.agent_name ? `agent · ${t.agent_name}` : t.kind;
    badge.hidden = false;
    if (!light.dataset.status) show(t.status);
  }, toastError);

  view.focus();
  return {
    dispose() {
      files.dispose();
      view.dispose();
      delete window.__rexec;
    },
  };
}
