// The hub's REST API. Same-origin calls are authenticated by the session cookie, so no token is
// ever held by the page; the embed passes `base` to reach a hub on another origin.

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly code: string) {
    super(message);
  }
}

export interface RequestOptions {
  base?: string;
  // text/plain keeps a cross-origin POST "simple", so the browser sends it without a preflight.
  plain?: boolean;
}

export async function api<T = any>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = opts.plain ? "text/plain" : "application/json";
  }
  let res: Response;
  try {
    res = await fetch((opts.base ?? "") + "/api/v1" + path, init);
  } catch {
    throw new ApiError("The hub cannot be reached", 0, "network");
  }
  const text = await res.text();
  const data = parseJson(text);
  if (!res.ok) throw refusal(res, data);
  return data as T;
}

function parseJson(text: string): any {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null; // a proxy's HTML error page, say: the status text says it then
  }
}

function refusal(res: Response, data: any): ApiError {
  return new ApiError(data?.error || `${res.status} ${res.statusText}`, res.status, data?.code || "http_" + res.status);
}

// A file from the hub, whole, as text (a recording's .cast); a refusal is an ApiError as with api().
export async function fetchText(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { credentials: "same-origin" });
  } catch {
    throw new ApiError("The hub cannot be reached", 0, "network");
  }
  const text = await res.text();
  if (!res.ok) throw refusal(res, parseJson(text));
  return text;
}

// For a refused socket: a 4xx (other than a rate limit) will not change by retrying, so its
// message is the answer; anything else (hub down, 5xx) is worth another try.
export function lastingError(err: unknown): string | null {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429 ? err.message : null;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface ShareLookup {
  terminal: { id: string; name: string; status: Status };
  mode: "view" | "control";
  expires_at: number;
}

// The terminal behind a share code; also what explains a refused share socket.
export function lookupShare(code: string, base?: string): Promise<ShareLookup> {
  return api<ShareLookup>("POST", "/shares/lookup", { code }, { base, plain: true });
}

// Hub and page share an origin unless the embed says otherwise.
export function wsBase(httpBase: string = location.origin): string {
  return httpBase.replace(/^http/, "ws").replace(/\/+$/, "");
}

// Shapes the hub sends (docs/api.md); times are unix seconds.
export interface User {
  id: string;
  name: string;
  admin: boolean;
}

export interface Session {
  user: User | null;  // null: signed out
  scopes: string;
  expires_at: number;
}

export type Status = "starting" | "running" | "offline" | "exited" | "lost" | "stopped";

export interface Terminal {
  id: string;
  name: string;
  kind: "agent" | "container";
  agent: string;
  agent_name?: string;
  image?: string;
  status: Status;
  exit_code: number | null;
  reason?: string;
  cols: number;
  rows: number;
  created_at: number;
  last_activity_at?: number;
  viewers: number;
  output_offset: number;
  gpus?: number[]; // the GPUs leased for it
}

// A terminal's recording (asciicast v2 on the hub). `duration` in seconds; `live`: still written.
export interface Recording {
  id: string;
  terminal: string;
  kind: "agent" | "container";
  owner: string;
  agent?: string;
  name: string;
  started_at: number;
  ended_at: number | null;
  bytes: number;
  duration: number;
  live: boolean;
  cast: string; // the file's path on the hub: /api/v1/recordings/{id}.cast
}

export interface RecordingPage {
  recordings: Recording[];
  next_before: string | null;
}

// Who holds a GPU now (a lease: the terminal it was made for, since when).
export interface GpuHolder {
  user: string;
  user_id: string;
  terminal: string;
  since: number;
}

export interface Reservation {
  id: string;
  agent: string;
  agent_name?: string;
  user: string;
  user_id: string;
  gpus: number[];
  from: string; // RFC 3339, UTC
  until: string;
  note?: string;
  created_at: number;
}

export interface GpuProcess {
  pid: number;
  name: string;
  memory_used: number;
  account: string;
  user: string | null;
  terminal: string | null;
  violation: boolean;
}

export interface Gpu {
  index: number;
  uuid?: string;
  name?: string;
  model?: string;
  mem?: number;
  utilization?: number | null;
  memory_used?: number | null;
  memory_total?: number | null;
  // A hub before leases sends null; one with them an object. A bare name is taken too.
  holder?: GpuHolder | string | null;
  processes?: GpuProcess[];
  reservations?: Reservation[];
  reserved_now?: Reservation | null;
  violation?: boolean;
  idle_since?: number | null;
}

export function holderName(g: Gpu): string | null {
  if (!g.holder) return null;
  return typeof g.holder === "string" ? g.holder : g.holder.user;
}

export interface Grant {
  agent: string;
  user: string;
  user_id: string;
  role: "use" | "view";
  unix_user: string | null;
  created_at: number;
  created_by: string;
}

export type Access = "owner" | "admin" | "use" | "view";

export interface GpuSample {
  index: number;
  utilization: number;
  memory_used: number;
  memory_total: number;
}

export interface Sample {
  t: number;
  cpu_percent: number;
  memory_used: number;
  memory_total: number;
  gpus?: GpuSample[];
}

export interface Agent {
  id: string;
  name: string;
  online: boolean;
  owner: string;
  host?: { hostname?: string; os?: string; kernel?: string; arch?: string; cpus?: number; memory_total?: number };
  gpus?: Gpu[];
  last_seen_at?: number;
  stats: Sample | null;
  access?: Access; // absent from a hub before grants: the caller's own machine
  gpu_policy?: "open" | "lease-required";
}
