// embed.js: Rexec.embed(element, {hub, share | token, terminal}) puts a live terminal into any
// page, on any origin. One self-contained script: it brings its own CSS and defines nothing
// but window.Rexec.
import { lastingError, lookupShare, wsBase } from "./api";
import { mountTerminal } from "./terminal_view";
import type { Terminal } from "@xterm/xterm";

declare const EMBED_CSS: string; // xterm's CSS and ours, put in by build.mjs

export interface EmbedOptions {
  hub: string; // "https://rexec.example.com"
  terminal: string;
  share?: string;
  token?: string;
  fontSize?: number;
}

function injectCss(): void {
  if (document.getElementById("rexec-embed-css")) return;
  const style = document.createElement("style");
  style.id = "rexec-embed-css";
  style.textContent = EMBED_CSS;
  document.head.append(style);
}

function embed(element: HTMLElement, opts: EmbedOptions): { terminal: Terminal; dispose(): void } {
  if (!element || !opts?.hub || !opts.terminal || !(opts.share || opts.token)) {
    throw new Error("Rexec.embed(element, {hub, terminal, share | token}): element, hub, terminal and a share code or token are required");
  }
  injectCss();
  element.classList.add("rexec-embed");
  const hub = opts.hub.replace(/\/+$/, "");
  const view = mountTerminal(element, {
    base: wsBase(hub),
    terminal: opts.terminal,
    share: opts.share,
    token: opts.share ? undefined : opts.token,
    fontSize: opts.fontSize,
    // A view-only share or a read-only token: stop offering a cursor that types nothing.
    onError: (ev) => {
      if (ev.code === "read_only") view.term.options.disableStdin = true;
    },
    refused: opts.share
      ? () => lookupShare(opts.share!, hub).then(() => null, lastingError)
      : undefined,
  });
  return {
    terminal: view.term,
    dispose() {
      view.dispose();
      element.classList.remove("rexec-embed");
    },
  };
}

(window as any).Rexec = { embed };
