// /recordings[?terminal=t_…][&limit=N]: the signed-in user's recordings (an admin's: everyone's),
// newest first, N (default 50) at a time: play, download the .cast, delete.
import { api, errorMessage, Recording, RecordingPage } from "./api";
import { confirmDialog } from "./dialogs";
import { ago, bytes, clock, h, localTime } from "./dom";
import type { App, Page } from "./main";
import { toast } from "./toast";

const PAGE = 50;

export function recordingsPage(root: HTMLElement, app: App, query: URLSearchParams): Page {
  const terminal = query.get("terminal");
  const limit = Math.min(1000, Math.max(1, Math.floor(Number(query.get("limit"))) || PAGE));
  const title = h("span", { class: "muted wide-only", text: terminal ? `of terminal ${terminal}` : "" });
  const body = h("tbody");
  const table = h(
    "div",
    { class: "rec-scroll", hidden: true },
    h(
      "table",
      { class: "rec-table", "data-testid": "recordings" },
      h("thead", {}, h("tr", {}, ...["Terminal", "Kind", "Started", "Duration", "Size", "", ""].map((t) => h("th", { scope: "col", text: t })))),
      body,
    ),
  );
  const status = h("p", { class: "muted loading", text: "Loading recordings…" });
  const more = h("button", { type: "button", text: "Older recordings", "data-testid": "more", hidden: true });
  const empty = h(
    "div",
    { class: "empty", "data-testid": "recordings-empty", hidden: true },
    h("h2", { text: terminal ? "No recordings of this terminal" : "No recordings yet" }),
    h("p", { text: "Every terminal is recorded while it runs, unless it was made with recording off. Its recording shows up here, and stays after the terminal is gone until you delete it." }),
  );
  root.append(
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Rexec"),
      h("h1", { class: "page-title", text: "Recordings" }),
      title,
      terminal ? h("a", { href: "/recordings", "data-testid": "all-recordings", text: "All recordings" }) : null,
      h("span", { class: "spacer" }),
      terminal ? h("a", { class: "button", href: `/t/${encodeURIComponent(terminal)}`, text: "Terminal" }) : null,
      h("a", { class: "button", href: "/", "data-testid": "dashboard-link", text: "Dashboard" }),
      h("span", { class: "user", text: app.session.user?.name ?? "" }),
    ),
    h("main", { class: "dash" }, h("section", { "aria-label": "Recordings" }, status, empty, table, h("div", { class: "actions rec-more" }, more))),
  );
  document.title = "Recordings · Rexec";

  let disposed = false;
  let before: string | null = null;
  let shown = 0;

  const showEmpty = () => {
    empty.hidden = shown > 0 || !more.hidden;
    table.hidden = shown === 0;
  };

  const load = async () => {
    more.disabled = true;
    const q = new URLSearchParams({ limit: String(limit) });
    if (terminal) q.set("terminal", terminal);
    if (before) q.set("before", before);
    try {
      const page = await api<RecordingPage>("GET", `/recordings?${q}`);
      if (disposed) return;
      status.hidden = true;
      for (const r of page.recordings) body.append(row(r));
      shown += page.recordings.length;
      if (terminal && page.recordings[0]?.name) title.textContent = `of ${page.recordings[0].name}`;
      before = page.next_before;
      more.hidden = !before;
      showEmpty();
    } catch (err) {
      if (disposed) return;
      // Said where the list would be (a first page) or where the next page would come.
      status.className = "empty";
      status.dataset.testid = "recordings-error";
      status.replaceChildren(h("h2", { text: "The recordings cannot be listed" }), h("p", { text: errorMessage(err) }));
      status.hidden = false;
    } finally {
      more.disabled = false;
    }
  };
  more.onclick = () => void load();

  const row = (r: Recording): HTMLElement => {
    const name = r.name || r.terminal;
    const error = h("div", { class: "row-error", role: "alert", "data-testid": "recording-error", hidden: true });
    const del = h("button", { type: "button", class: "danger", text: "Delete", "data-testid": "delete" });
    const tr = h(
      "tr",
      { "data-testid": "recording-row", "data-recording-id": r.id, "data-terminal-id": r.terminal, "data-live": String(r.live) },
      h("td", {}, h("a", { class: "rec-name", href: `/r/${encodeURIComponent(r.id)}`, text: name }), h("div", { class: "muted small mono", text: r.terminal })),
      h("td", {}, h("span", { class: "badge", "data-kind": r.kind, text: r.kind })),
      h("td", {}, h("time", { datetime: new Date(r.started_at * 1000).toISOString(), title: ago(r.started_at), text: localTime(r.started_at) })),
      h("td", { class: "num", "data-testid": "duration", text: clock(r.duration) }),
      h("td", { class: "num", "data-testid": "size", text: bytes(r.bytes) }),
      h(
        "td",
        {},
        r.live
          ? h("span", { class: "badge live-badge", "data-testid": "live", title: "Its terminal is still being recorded", text: "live" })
          : h("span", { class: "muted small", title: r.ended_at ? localTime(r.ended_at) : "", text: r.ended_at ? `ended ${ago(r.ended_at)}` : "ended" }),
      ),
      h(
        "td",
        { class: "rec-actions" },
        h("a", { class: "button primary", href: `/r/${encodeURIComponent(r.id)}`, "data-testid": "play", text: "Play" }),
        h("a", { class: "button", href: castUrl(r), download: castFileName(r), "data-testid": "download", text: "Download .cast" }),
        del,
        error,
      ),
    );
    del.onclick = async () => {
      if (!(await confirmDialog("Delete recording", `Delete the recording of ${name} (${bytes(r.bytes)}, ${clock(r.duration)})? Its file is removed from the hub.`, "Delete"))) return;
      error.hidden = true;
      del.disabled = true;
      try {
        await api("DELETE", `/recordings/${encodeURIComponent(r.id)}`);
        tr.remove();
        shown--;
        showEmpty();
        toast("Recording deleted");
      } catch (err) {
        // A live recording is refused (409): the hub says why, next to the button.
        error.textContent = errorMessage(err);
        error.hidden = false;
        del.disabled = false;
      }
    };
    return tr;
  };

  void load();
  return {
    dispose() {
      disposed = true;
    },
  };
}

// Same-origin, so the session cookie authorises it like the API calls.
export function castUrl(r: Recording): string {
  return r.cast || `/api/v1/recordings/${encodeURIComponent(r.id)}.cast`;
}

export function castFileName(r: Recording): string {
  const name = (r.name || r.terminal).replace(/[^\w.-]+/g, "_").replace(/^[._]+/, "");
  return `${name ? name + "-" : ""}${r.id}.cast`;
}
