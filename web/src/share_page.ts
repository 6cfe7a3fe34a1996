// /s/{code}: a shared terminal for someone without an account. The code alone authorises it;
// a view-only share sends no input (and the hub would drop it anyway).
import { errorMessage, lastingError, lookupShare, wsBase } from "./api";
import { h, until } from "./dom";
import type { Page } from "./main";
import { mountTerminal, TerminalView } from "./terminal_view";

export function sharePage(root: HTMLElement, code: string): Page {
  const light = h("span", { class: "light" });
  const name = h("strong", { class: "term-name", text: "Shared terminal" });
  const mode = h("span", { class: "badge", hidden: true });
  const expires = h("span", { class: "muted small wide-only" });
  const main = h("div", { class: "term-main" });
  root.append(
    h(
      "div",
      { class: "term-page" },
      h("header", { class: "term-bar" }, h("span", { class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Rexec"), light, name, mode, h("span", { class: "spacer" }), expires),
      main,
    ),
  );
  document.title = "Shared terminal · Rexec";

  let view: TerminalView | null = null;
  let disposed = false;
  lookupShare(code).then(
    (s) => {
      if (disposed) return;
      const readOnly = s.mode !== "control";
      name.textContent = s.terminal.name || s.terminal.id;
      document.title = `${s.terminal.name || s.terminal.id} (shared) · Rexec`;
      mode.textContent = readOnly ? "view only" : "control";
      mode.dataset.testid = readOnly ? "view-only" : "control";
      mode.hidden = false;
      expires.textContent = s.expires_at ? `link expires ${until(s.expires_at)}` : "";
      expires.title = s.expires_at ? new Date(s.expires_at * 1000).toLocaleString() : "";
      light.dataset.status = s.terminal.status;
      view = mountTerminal(main, {
        base: wsBase(),
        terminal: s.terminal.id,
        share: code,
        readOnly,
        onStatus: (status) => (light.dataset.status = status),
        // An expired or revoked link is refused before the upgrade: the lookup says so in words.
        refused: () => lookupShare(code).then(() => null, lastingError),
      });
      window.__rexec = { term: view.term };
      view.focus();
    },
    (err) => {
      if (disposed) return;
      main.append(h("div", { class: "empty" }, h("h2", { text: "This link does not work" }), h("p", { text: errorMessage(err) })));
    },
  );
  return {
    dispose() {
      disposed = true;
      view?.dispose();
      delete window.__rexec;
    },
  };
}
