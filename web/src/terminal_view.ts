// A live xterm.js terminal attached through the viewer protocol, with a banner that says why the
// screen is not live. The terminal page, the share page and the embed all mount this.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { copyText } from "./clipboard";
import { Viewer, ViewerEvent, ViewerHandlers, ViewerOptions, ViewerState } from "./viewer";

export interface TerminalViewOptions extends ViewerOptions {
  fontSize?: number;
  readOnly?: boolean;
  refused?: ViewerHandlers["refused"];
  // A button for the banner in a given terminal status (e.g. "Start" when stopped).
  action?(status: string): { label: string; run(): void } | null;
  onStatus?(status: string): void;
  onViewers?(count: number): void;
  onError?(ev: ViewerEvent): void;
}

export interface TerminalView {
  term: Terminal;
  setFontSize(size: number): void;
  focus(): void;
  dispose(): void;
}

const theme = {
  background: "#0b0f14",
  foreground: "#d7dee8",
  cursor: "#e6edf3",
  cursorAccent: "#0b0f14",
  selectionBackground: "#3b5070",
  black: "#1b222c",
  red: "#ef6b6b",
  green: "#5fd38d",
  yellow: "#e8c15a",
  blue: "#6aa7ff",
  magenta: "#c792ea",
  cyan: "#5ccfe6",
  white: "#d7dee8",
  brightBlack: "#5c6773",
  brightRed: "#ff8f8f",
  brightGreen: "#86e6a8",
  brightYellow: "#f3d37f",
  brightBlue: "#91bfff",
  brightMagenta: "#dcb2f5",
  brightCyan: "#8ee0f0",
  brightWhite: "#ffffff",
};

export function mountTerminal(parent: HTMLElement, opts: TerminalViewOptions): TerminalView {
  const root = document.createElement("div");
  root.className = "rx-view";
  const banner = document.createElement("div");
  banner.className = "rx-banner";
  banner.setAttribute("role", "status");
  banner.hidden = true;
  const host = document.createElement("div");
  host.className = "rx-xterm";
  host.dataset.testid = "terminal-view";
  root.append(banner, host);
  parent.append(root);

  const term = new Terminal({
    fontSize: opts.fontSize ?? 14,
    fontFamily: 'ui-monospace, "SF Mono", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
    // At 1.0 the row clips DejaVu Sans Mono's underscore (it sits below the cell): "PRETTY NAME".
    lineHeight: 1.15,
    theme,
    scrollback: 5000,
    cursorBlink: !opts.readOnly,
    disableStdin: !!opts.readOnly,
    // Remote programs print anything; the console is not the place to report it.
    logLevel: "off",
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);

  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey) return true;
    if (e.code === "KeyC") {
      if (term.hasSelection()) void copyText(term.getSelection());
      e.preventDefault();
      return false;
    }
    // Left to the browser, Ctrl-Shift-V fires a paste event that xterm turns into input.
    return e.code !== "KeyV";
  });

  let conn: ViewerState = "connecting";
  let status = "";
  let exit: ViewerEvent | null = null;
  let closedWhy = "";

  const showBanner = () => {
    const [text, tone] = bannerText(conn, status, exit, closedWhy);
    banner.hidden = !text;
    banner.dataset.tone = tone;
    banner.textContent = text;
    const act = text && conn === "open" ? opts.action?.(status) : null;
    if (act) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = act.label;
      b.onclick = act.run;
      banner.append(" ", b);
    }
  };

  const viewer = new Viewer(opts, {
    output: (bytes) => term.write(bytes),
    event: (ev) => {
      if (ev.type === "status") {
        status = String(ev.status);
        if (status !== "exited") exit = null;
        opts.onStatus?.(status);
      } else if (ev.type === "exit") {
        exit = ev;
      } else if (ev.type === "viewers") {
        opts.onViewers?.(Number(ev.count));
      } else if (ev.type === "error") {
        opts.onError?.(ev);
      }
      showBanner();
    },
    state: (s, why) => {
      conn = s;
      closedWhy = why ?? "";
      showBanner();
    },
    restarted: () => {
      term.reset();
      exit = null;
    },
    refused: opts.refused,
  });

  if (!opts.readOnly) {
    term.onData((d) => viewer.input(d));
    // Binary strings are one char per byte (e.g. old mouse reports): send them as such.
    term.onBinary((d) => viewer.input(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    term.onResize(({ cols, rows }) => viewer.resize(cols, rows));
  }

  let frame = 0;
  const refit = () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => fit.fit());
  };
  const observer = new ResizeObserver(refit);
  observer.observe(host);
  fit.fit();
  if (!opts.readOnly) viewer.resize(term.cols, term.rows);

  return {
    term,
    setFontSize(size) {
      term.options.fontSize = size;
      // xterm measures the new glyph size on its next render: fit after that.
      refit();
    },
    focus: () => term.focus(),
    dispose() {
      cancelAnimationFrame(frame);
      observer.disconnect();
      viewer.dispose();
      term.dispose();
      root.remove();
    },
  };
}

function bannerText(conn: ViewerState, status: string, exit: ViewerEvent | null, closedWhy: string): [string, string] {
  if (conn === "closed") return [`Disconnected: ${closedWhy}`, "bad"];
  if (conn === "reconnecting") return ["Connection lost, reconnecting…", "warn"];
  if (conn === "connecting") return ["Connecting…", "info"];
  switch (status) {
    case "starting":
      return ["Starting…", "info"];
    case "offline":
      return ["The machine is offline. The shell keeps running; this view resumes when it is back.", "warn"];
    case "stopped":
      return ["This container is stopped.", "muted"];
    case "lost":
      return ["Lost: the agent no longer has this shell (it restarted).", "bad"];
    case "exited": {
      const how = exit?.signal ? ` (signal ${exit.signal})` : exit ? ` (exit code ${exit.code})` : "";
      return [`The shell exited${how}.`, "muted"];
    }
  }
  return ["", ""];
}
