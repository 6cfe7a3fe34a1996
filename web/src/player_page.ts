// /r/{id} (yours) and /p/{code} (a recording share link, no account needed): one recording played back by asciinema-player (the asciicast reference player): its own
// controls (play/pause, seek bar, time, fullscreen, keys), a speed picker, and Download .cast.
//
// The player streams: its "segmented" source takes the hub's index of the recording
// (GET .../segments: start times and URLs) and then the segments it needs (about 1 MiB of file
// each, starting with a snapshot of the screen), at most the one playing and its neighbours, so a
// recording of any length costs the browser a few segments, never the whole file. A seek fetches
// the segment it lands in; a new speed makes a new player from the same source, at the same moment.
import type { Player } from "asciinema-player";
import { api, ApiError, errorMessage, Recording } from "./api";
import { ago, bytes, clock, h, localTime } from "./dom";
import type { Page } from "./main";
import { castFileName, castUrl } from "./recordings_page";

export const SPEEDS = [0.5, 1, 2, 4];

declare global {
  interface Window {
    // For tests: the player now on the page (a new one after each change of speed).
    __player?: Player;
  }
}

// What to play: one of your recordings, or the one a share code names (looked up and fetched
// with the code in a body and a header, never in a URL the hub would log).
export type PlayerSource = { id: string } | { code: string };

async function shareCast(code: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch("/api/v1/recording-shares/cast", { headers: { "X-Rexec-Share": code }, credentials: "omit" });
  } catch {
    throw new ApiError("The hub cannot be reached", 0, "network");
  }
  const text = await res.text();
  if (!res.ok) {
    let message = "This share link is not valid (it may have expired or been deleted)";
    try {
      message = JSON.parse(text).error || message;
    } catch {}
    throw new ApiError(message, res.status, "share");
  }
  return text;
}

// The player's segmented source: your recording's index with the session cookie, a shared one's
// with the code in a header (the same-origin hub answers; the URL never holds it).
function segmentedSource(source: PlayerSource, rec: Recording) {
  return "code" in source
    ? { url: "/api/v1/recording-shares/segments", format: "segmented", fetchOpts: { headers: { "X-Rexec-Share": source.code }, credentials: "omit" } }
    : { url: `/api/v1/recordings/${encodeURIComponent(rec.id)}/segments`, format: "segmented", fetchOpts: { credentials: "same-origin" } };
}

export function playerPage(root: HTMLElement, source: PlayerSource): Page {
  const shared = "code" in source;
  const id = "id" in source ? source.id : "";
  const back = h("a", { class: "back", href: "/recordings", "data-testid": "back" }, "← ", h("span", { class: "wide-only", text: "Recordings" }));
  const name = h("strong", { class: "term-name", text: id });
  const kind = h("span", { class: "badge wide-only", hidden: true });
  const live = h("span", { class: "badge live-badge", "data-testid": "live", title: "Still being recorded: this plays what it held when the page loaded", text: "live", hidden: true });
  const when = h("span", { class: "muted small wide-only" });
  const speed = h(
    "select",
    { class: "speed", "data-testid": "speed", "aria-label": "Playback speed", title: "Playback speed", disabled: true },
    ...SPEEDS.map((s) => h("option", { value: String(s), selected: s === 1, text: `${s}×` })),
  );
  const download = h("a", { class: "button", "data-testid": "download", text: "Download .cast", hidden: true });
  const main = h("div", { class: "term-main player-main" });
  root.append(
    h(
      "div",
      { class: "term-page" },
      h("header", { class: "term-bar" }, back, name, kind, live, when, h("span", { class: "spacer" }), h("label", { class: "speed-label" }, h("span", { class: "muted small", text: "Speed" }), speed), download),
      main,
    ),
  );
  document.title = "Recording · Rexec";

  let disposed = false;
  let player: Player | null = null;
  let host: HTMLElement | null = null;
  let playing = false;

  const fail = (title: string, err: unknown) => {
    const old = player;
    player = null;
    old?.dispose();
    delete window.__player;
    speed.disabled = true;
    main.replaceChildren(h("div", { class: "empty", "data-testid": "player-error", role: "alert" }, h("h2", { text: title }), h("p", { text: errorMessage(err) })));
  };

  // A player for `cast` at `rate`, from `at` seconds, playing if `play`.
  const mount = (create: typeof import("asciinema-player").create, src: object, rate: number, at: number, play: boolean) => {
    // No longer "the player" before it goes: what it says while disposed is not about this page.
    const old = player;
    player = null;
    old?.dispose();
    host?.remove();
    host = h("div", { class: "player-host", "data-testid": "player", "data-state": "loading", "data-speed": String(rate) });
    main.append(host);
    const el = host;
    // Not startAt: the player goes there only once it plays, and a paused one would show 0:00.
    // The typings know only url and data sources; format "segmented" is the player's too.
    const p = create(src as Parameters<typeof create>[0], el, {
      speed: rate,
      preload: true,
      controls: true, // always shown: this page is the player
      fit: "both",
      theme: "rexec",
      terminalFontFamily: 'ui-monospace, "SF Mono", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      terminalLineHeight: 1.15,
    });
    // The typings list only some of the player's events; these come from its core too.
    const on = p.addEventListener as (name: string, handler: (ev: any) => void) => void;
    const state = (s: string, isPlaying: boolean) => () => {
      if (player !== p) return;
      playing = isPlaying;
      el.dataset.state = s;
    };
    on("playing", state("playing", true));
    on("pause", state("paused", false));
    on("ended", state("ended", false));
    on("error", (e: { message?: string }) => {
      if (player !== p) return;
      const message = /missing events/.test(e?.message ?? "") ? "Nothing was recorded yet: the terminal has printed no output." : e?.message || "The player failed";
      fail("This recording cannot be played", message);
    });
    player = p;
    window.__player = p;
    (async () => {
      if (at > 0) await p.seek(at);
      if (play) await p.play();
      if (player !== p) return;
      if (el.dataset.state === "loading") el.dataset.state = play ? "playing" : "paused";
      speed.disabled = false;
    })().catch(() => {}); // a failure is the player's "error" event, shown by fail()
  };

  if (shared) back.hidden = true;  // someone without an account has no list to go back to
  (async () => {
    const rec = shared
      ? (await api<{ recording: Recording }>("POST", "/recording-shares/lookup", { code: source.code }, { plain: true })).recording
      : await api<Recording>("GET", `/recordings/${encodeURIComponent(id)}`);
    if (disposed) return;
    name.textContent = rec.name || rec.terminal;
    document.title = `${rec.name || rec.terminal} (recording) · Rexec`;
    back.setAttribute("href", `/recordings?terminal=${encodeURIComponent(rec.terminal)}`);
    kind.textContent = rec.kind;
    kind.dataset.kind = rec.kind;
    kind.hidden = false;
    live.hidden = !rec.live;
    when.textContent = `${localTime(rec.started_at)} · ${clock(rec.duration)} · ${bytes(rec.bytes)}`;
    when.title = `started ${ago(rec.started_at)}`;
    download.setAttribute("download", castFileName(rec));
    if (!shared) {
      download.setAttribute("href", castUrl(rec));
      download.hidden = false;
    }

    // The player (and the WebAssembly terminal inside it) is started only on this page.
    const { create } = await import("asciinema-player");
    if (disposed) return;
    if (shared) {
      // No cookie to fetch the file with: the first click fetches it with the code, then saves it.
      download.setAttribute("href", "#");
      download.hidden = false;
      download.onclick = (ev) => {
        if (download.getAttribute("href")?.startsWith("blob:")) return;
        ev.preventDefault();
        shareCast(source.code)
          .then((cast) => {
            download.setAttribute("href", URL.createObjectURL(new Blob([cast], { type: "application/x-asciicast" })));
            download.click();
          })
          .catch((err) => fail("This recording cannot be downloaded", err));
      };
    }
    const src = segmentedSource(source, rec);
    mount(create, src, 1, 0, true);
    speed.onchange = () => {
      if (!player) return;
      const at = player.getCurrentTime() ?? 0;
      const ended = host?.dataset.state === "ended";
      mount(create, src, Number(speed.value), ended ? 0 : at, playing);
    };
  })().catch((err) => {
    if (disposed) return;
    if (shared && err instanceof ApiError && err.status === 401) fail("This share link is not valid", err);
    else fail(err instanceof ApiError && err.status === 404 ? "No such recording" : "This recording cannot be played", err);
  });

  return {
    dispose() {
      disposed = true;
      player?.dispose();
      delete window.__player;
    },
  };
}
