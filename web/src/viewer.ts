// The viewer protocol (protocol/SPEC.md section 2): one WebSocket per attached terminal, resumed
// after drops without losing or repeating output. Shared by the dashboard pages and the embed.

const OP_INPUT = 0x01;
const OP_RESIZE = 0x02;
const OP_OUTPUT = 0x81;
const OP_EVENT = 0x82;
// The hub takes client messages of at most 64 KiB; longer pastes go in pieces.
const MAX_INPUT = 65535;

export interface ViewerEvent {
  type: string;
  [key: string]: any;
}

export type ViewerState = "connecting" | "open" | "reconnecting" | "closed";

export interface ViewerOptions {
  base: string; // ws:// or wss:// origin of the hub
  terminal: string;
  share?: string;
  token?: string; // embeds only: sent as a subprotocol, never in the URL
}

export interface ViewerHandlers {
  output(bytes: Uint8Array): void;
  event(ev: ViewerEvent): void;
  state(state: ViewerState, why?: string): void;
  // The terminal started over (a stopped container started again): its output restarts at 0.
  restarted(): void;
  // A refused upgrade tells the browser nothing; this finds out why. A message ends the viewer,
  // null means "looks transient, keep trying".
  refused?(): Promise<string | null>;
}

// Full-jitter-ish exponential backoff: 0.5 s doubling to 10 s, each wait between half and all of it.
export class Backoff {
  private delay = 500;
  next(): number {
    const d = this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, 10000);
    return d;
  }
  reset(): void {
    this.delay = 500;
  }
}

export class Viewer {
  private ws: WebSocket | null = null;
  // Offset of the next output byte we expect; null until the first output (then the hub replays
  // its whole ring, which is what a freshly loaded page wants).
  private next: number | null = null;
  private size: [number, number] | null = null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private backoff = new Backoff();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private disposed = false;
  private status = "";
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  constructor(private readonly opts: ViewerOptions, private readonly on: ViewerHandlers) {
    this.connect("connecting");
  }

  input(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? this.encoder.encode(data) : data;
    for (let i = 0; i < bytes.length; i += MAX_INPUT) {
      const chunk = bytes.subarray(i, i + MAX_INPUT);
      const msg = new Uint8Array(chunk.length + 1);
      msg[0] = OP_INPUT;
      msg.set(chunk, 1);
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(msg);
      // Keys typed while (re)connecting go out once the socket opens; a paste-sized backlog
      // at most, so a long outage does not end in a burst of stale typing.
      else if (this.pendingBytes + msg.length <= MAX_INPUT) {
        this.pending.push(msg);
        this.pendingBytes += msg.length;
      }
    }
  }

  resize(cols: number, rows: number): void {
    this.size = [cols, rows];
    this.sendSize();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onclose = ws.onmessage = null;
    // Closing a socket that is still connecting makes the browser log an error: let it open first.
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
    else ws.close(1000);
  }

  private url(): string {
    const q = new URLSearchParams();
    if (this.next !== null) q.set("since", String(this.next));
    if (this.opts.share) q.set("share", this.opts.share);
    const query = q.toString();
    return `${this.opts.base}/api/v1/terminals/${encodeURIComponent(this.opts.terminal)}/attach${query ? "?" + query : ""}`;
  }

  private connect(state: ViewerState): void {
    this.on.state(state);
    const protocols = this.opts.token ? ["rexec.term.v1", "rexec.bearer." + this.opts.token] : "rexec.term.v1";
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url(), protocols);
    } catch (err) {
      // A malformed hub address or token: no retry will fix it.
      this.disposed = true;
      this.on.state("closed", err instanceof Error ? err.message : String(err));
      return;
    }
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.backoff.reset();
      this.on.state("open");
      this.sendSize();
      for (const msg of this.pending) ws.send(msg);
      this.pending = [];
      this.pendingBytes = 0;
    };
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) this.receive(new Uint8Array(m.data));
    };
    ws.onclose = (e) => this.dropped(e, opened);
    this.ws = ws;
  }

  private receive(msg: Uint8Array): void {
    if (msg[0] === OP_OUTPUT && msg.length >= 9) {
      const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
      // u64 as two halves: offsets stay far below 2^53, and this avoids BigInt.
      const offset = view.getUint32(1) * 2 ** 32 + view.getUint32(5);
      const bytes = msg.subarray(9);
      const skip = this.next === null ? 0 : Math.max(0, this.next - offset);
      if (skip < bytes.length) this.on.output(bytes.subarray(skip));
      this.next = Math.max(this.next ?? 0, offset + bytes.length);
    } else if (msg[0] === OP_EVENT) {
      let ev: ViewerEvent;
      try {
        ev = JSON.parse(this.decoder.decode(msg.subarray(1)));
      } catch {
        return;
      }
      if (!ev || typeof ev.type !== "string") return;
      if (ev.type === "status") this.status = String(ev.status);
      this.on.event(ev);
    }
  }

  private dropped(e: CloseEvent, opened: boolean): void {
    this.ws = null;
    if (this.disposed) return;
    // The hub's way of saying "start over": a restarted terminal has a new output stream. A
    // stopped terminal only ever comes back that way, so a drop while stopped (its close frame
    // lost) starts over too; at worst the screen is redrawn from the hub's ring.
    const restarted = e.code === 1000 && /restart/i.test(e.reason);
    if (restarted || (opened && e.code !== 1000 && this.status === "stopped")) {
      this.next = null;
      this.status = "";
      this.on.restarted();
      if (restarted) return this.connect("connecting");
    } else if (e.code === 1000) {
      this.disposed = true;
      this.on.state("closed", e.reason || "The hub closed the connection");
      return;
    }
    if (!opened && this.on.refused) {
      this.on.state("reconnecting");
      this.on.refused().then((why) => {
        if (this.disposed) return;
        if (why === null) return this.retry();
        this.disposed = true;
        this.on.state("closed", why);
      });
      return;
    }
    this.retry();
  }

  private retry(): void {
    this.on.state("reconnecting");
    this.timer = setTimeout(() => this.connect("reconnecting"), this.backoff.next());
  }

  private sendSize(): void {
    if (!this.size) return;
    const msg = new Uint8Array(5);
    msg[0] = OP_RESIZE;
    new DataView(msg.buffer).setUint16(1, this.size[0]);
    new DataView(msg.buffer).setUint16(3, this.size[1]);
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(msg);
  }
}
