// What the browser end-to-end tests share (node:test, one hub per test file): a real rexec-hub on
// loopback, a real rexec-agent enrolled as the "machine" e2e-box, one container terminal
// (rexec/debian:12) and one agent terminal made through the API, and a headless Chromium driven
// by playwright-core (from web/node_modules: the page's own dev dependency, no second package.json).
//
// Every page a test opens goes through Scope.page(), which records console errors and uncaught
// exceptions; Fixture.run() fails the test when any page had one. Everything started here is
// stopped in close(), and a process 'exit' hook stops the processes and removes this hub's
// containers even when the runner is torn down early.
//
// Environment: REXEC_BUILD_DIR (default build/debug), REXEC_SOURCE_DIR (default: two levels up),
// REXEC_CHROMIUM (default /usr/bin/chromium), REXEC_REQUIRE_DOCKER (set: a missing Docker or
// Chromium fails instead of skipping), REXEC_SCREENSHOTS (a directory: save screenshots there),
// REXEC_WEB_LOGS (a directory: keep each file's hub and agent logs there).

import { spawn, execFileSync } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { tmpdir, cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = path.resolve(process.env.REXEC_SOURCE_DIR || path.join(here, "..", ".."));
export const buildDir = path.resolve(process.env.REXEC_BUILD_DIR || path.join(sourceDir, "build", "debug"));
export const webDir = path.join(sourceDir, "web");
export const chromiumPath = process.env.REXEC_CHROMIUM || "/usr/bin/chromium";
export const staticAgentPath = path.join(sourceDir, "build", "static-agent", "agent", "rexec-agent");
export const hubBinary = path.join(buildDir, "hub", "rexec-hub");
export const agentBinary = path.join(buildDir, "agent", "rexec-agent");
export const screenshotDir = process.env.REXEC_SCREENSHOTS || "";
export const IMAGES = ["rexec/busybox:latest", "rexec/debian:12"];

// A fixed random string per test run: markers typed into shells are unique to this run.
export const runId = randomBytes(6).toString("hex");

function sh(cmd, args, timeout = 15000) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", timeout, stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    return null;
  }
}

// What a browser test needs beyond the build: Chromium, Docker with both images, the static agent.
function missingPrerequisites({ docker = true, browser = true } = {}) {
  const missing = [];
  if (browser && !existsSync(chromiumPath)) missing.push(`no Chromium at ${chromiumPath} (apt-get install chromium)`);
  if (docker) {
    if (sh("docker", ["info", "--format", "{{.ServerVersion}}"]) === null) {
      missing.push("no Docker daemon answers (scripts/docker-up.sh starts one)");
    } else {
      for (const image of IMAGES)
        if (sh("docker", ["image", "inspect", "--format", "{{.Id}}", image]) === null)
          missing.push(`no image ${image} (make images)`);
    }
    if (!existsSync(staticAgentPath)) missing.push(`no static agent at ${staticAgentPath} (cmake --preset static-agent)`);
  }
  return missing.join("; ");
}

// For describe(..., {skip}): a reason to skip, or false. Under REXEC_REQUIRE_DOCKER (make test)
// nothing is skipped: setup() then fails with the same reason.
export function skipReason(needs = {}) {
  const missing = missingPrerequisites(needs);
  if (!missing || process.env.REXEC_REQUIRE_DOCKER) return false;
  const reason = `SKIPPED(web): ${missing} (set REXEC_REQUIRE_DOCKER=1 to fail instead)`;
  process.stderr.write(reason + "\n");
  return reason;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls fn until it returns something truthy; returns it. On timeout throws, saying what was
// awaited and what fn last returned (or threw). An error thrown by fn with .fatal set (see
// fatal()) ends the wait at once.
export async function waitFor(fn, { timeout = 10000, interval = 100, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      if (err?.fatal) throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      const shown = last instanceof Error ? `threw ${last.message}` : `last value ${JSON.stringify(last)?.slice(0, 2000)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (${shown})`);
    }
    await sleep(interval);
  }
}

export function fatal(message) {
  return Object.assign(new Error(message), { fatal: true });
}

// ---- processes ----

const running = new Set(); // child processes still to stop
const hubIds = new Set(); // rexec.hub labels of hubs whose containers are ours
const tempDirs = new Set(); // fixture directories not yet removed
process.on("exit", () => {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
  for (const id of hubIds) removeContainers(id);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// Interrupted (Ctrl-C, a runner's timeout): exit, so the hook above still cleans up.
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]]) process.once(signal, () => process.exit(code));

function removeContainers(hubId) {
  const ids = sh("docker", ["ps", "-aq", "--filter", `label=rexec.hub=${hubId}`]);
  if (ids && ids.trim()) sh("docker", ["rm", "-f", ...ids.trim().split(/\s+/)], 30000);
}

function start(argv, logFile, input) {
  const fd = openSync(logFile, "a");
  const child = spawn(argv[0], argv.slice(1), { stdio: [input === undefined ? "ignore" : "pipe", fd, fd] });
  closeSync(fd);
  if (input !== undefined) child.stdin.end(input);
  child.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
    // Not started at all (e.g. a binary being relinked): say so instead of crashing the runner.
    child.on("error", (err) => {
      child.failure = `${argv[0]}: ${err.message}`;
      resolve({ code: null, signal: null, error: err });
    });
  });
  child.exited.then(() => running.delete(child));
  running.add(child);
  return child;
}

async function stop(child, ms = 5000) {
  if (!child || child.failure || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer;
  const done = await Promise.race([child.exited, new Promise((r) => (timer = setTimeout(r, ms, null)))]);
  clearTimeout(timer);
  if (!done) {
    child.kill("SIGKILL");
    await child.exited;
  }
}

function readText(file) {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

// ---- the fixture ----

// agentArgs: more flags for the agent (e.g. ["--nvidia-smi", fake]); none by default.
export async function setup({ docker = true, browser = true, agent = true, agentArgs = [] } = {}) {
  const missing = missingPrerequisites({ docker, browser });
  if (missing) throw new Error(`the web tests need: ${missing}`);
  for (const bin of [hubBinary, ...(agent ? [agentBinary] : [])])
    if (!existsSync(bin)) throw new Error(`missing ${bin}: build first (cmake --build --preset debug)`);
  const fx = new Fixture();
  try {
    await fx.start({ docker, browser, agent, agentArgs });
  } catch (err) {
    err.message += "\n" + fx.logs();
    await fx.close();
    throw err;
  }
  return fx;
}

export class Fixture {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), "rexec-web-"));
    tempDirs.add(this.dir);
    this.dataDir = path.join(this.dir, "data");
    this.hubLog = path.join(this.dir, "hub.log");
    this.agentLog = path.join(this.dir, "agent.log");
    this.hub = null;
    this.agent = null;
    this.browser = null;
    this.failed = false;
  }

  async start({ docker, browser, agent, agentArgs = [] }) {
    // Port 0: the hub picks a free port and logs it (no race with other tests for a port).
    this.port = await this.startHub("127.0.0.1:0");
    this.url = `http://127.0.0.1:${this.port}`;
    this.token = readText(path.join(this.dataDir, "admin.token")).trim();
    const hubId = readText(path.join(this.dataDir, "hub-id")).trim();
    if (hubId) {
      this.hubId = hubId;
      hubIds.add(hubId);
    }

    const launching = browser ? this.launchBrowser() : null;
    launching?.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
    if (agent) await this.startAgent(agentArgs);
    if (docker) {
      this.container = await this.createTerminal({ kind: "container", image: "rexec/debian:12", name: "e2e-debian", cpus: cpus().length });
    }
    if (agent) this.agentTerminal = await this.createTerminal({ kind: "agent", agent: "e2e-box", name: "e2e-shell" });
    await launching;
  }

  // Starts the hub on `listen`; its port once it listens.
  async startHub(listen) {
    const listening = () => [...readText(this.hubLog).matchAll(/event=hub\.listening .*port=(\d+)/g)];
    const before = listening().length;
    this.hub = start(
      [hubBinary, "serve", "--listen", listen, "--data-dir", this.dataDir,
        ...(existsSync(staticAgentPath) ? ["--agent-binary", staticAgentPath] : []),
        "--rate-requests", "0", "--rate-terminal-creates", "0", "--viewers-per-terminal", "1000"],
      this.hubLog,
    );
    const line = await waitFor(
      () => {
        if (this.hub.failure || this.hub.exitCode !== null) throw fatal(this.hub.failure ?? `rexec-hub exited with ${this.hub.exitCode}`);
        const all = listening();
        return all.length > before ? all[all.length - 1] : null;
      },
      { timeout: 20000, what: "event=hub.listening in the hub log" },
    );
    return Number(line[1]);
  }

  // kill -9 and start again on the same port and data directory: every socket drops at once.
  async crashHub() {
    this.hub.kill("SIGKILL");
    await this.hub.exited;
    await this.startHub(`127.0.0.1:${this.port}`);
  }

  async launchBrowser() {
    const require = createRequire(path.join(webDir, "package.json"));
    const { chromium } = require("playwright-core");
    this.browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
  }

  async startAgent(extra = []) {
    const { status, body } = await this.api("POST", "/api/v1/agent-enrollments", {});
    if (status !== 201) throw new Error(`enrollment: ${status} ${JSON.stringify(body)}`);
    // The enrollment token on stdin, never on the command line.
    this.agent = start(
      [agentBinary, "--hub", `ws://127.0.0.1:${this.port}`, "--credential-file", path.join(this.dir, "agent.credential"),
        "--name", "e2e-box", "--enroll-token-file", "-",
        // /bin/sh unless told: root's login bash runs the machine's ~/.bashrc (slow, and it can
        // stall on a stale pyenv lock); the tests are of Rexec, not of that.
        ...(extra.includes("--shell") ? [] : ["--shell", "/bin/sh"]), ...extra],
      this.agentLog,
      body.token + "\n",
    );
    const a = await waitFor(
      async () => {
        if (this.agent.failure || this.agent.exitCode !== null) throw fatal(this.agent.failure ?? `rexec-agent exited with ${this.agent.exitCode}`);
        return (await this.api("GET", "/api/v1/agents")).body.agents?.find((x) => x.name === "e2e-box" && x.online);
      },
      { timeout: 20000, what: "agent e2e-box online" },
    );
    this.agentId = a.id;
  }

  // POST a terminal and wait until it is running.
  async createTerminal(spec) {
    const { status, body } = await this.api("POST", "/api/v1/terminals", spec);
    if (status !== 201) throw new Error(`POST /api/v1/terminals ${JSON.stringify(spec)}: ${status} ${JSON.stringify(body)}`);
    return this.waitStatus(body.id, "running");
  }

  async waitStatus(id, status, timeout = 30000) {
    return waitFor(
      async () => {
        const r = await this.api("GET", `/api/v1/terminals/${id}`);
        return r.status === 200 && r.body.status === status && r.body;
      },
      { timeout, what: `terminal ${id} ${status}` },
    );
  }

  // The hub's API with the admin token. Returns {status, body, headers}. node:http without
  // keep-alive rather than fetch, whose pooled sockets keep the process alive for seconds.
  api(method, p, body, headers = {}) {
    return this.apiAs(this.token, method, p, body, headers);
  }

  // The same with another user's token (a second user made through POST /api/v1/users).
  apiAs(token, method, p, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
      const req = httpRequest(this.url + p, {
        method,
        agent: false,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(data ? { "Content-Type": "application/json", "Content-Length": data.length } : {}),
          ...headers,
        },
      });
      req.on("error", reject);
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const raw = Buffer.concat(chunks);
          let json = null;
          try {
            json = raw.length ? JSON.parse(raw.toString("utf8")) : null;
          } catch {
            json = raw.toString("utf8");
          }
          resolve({ status: res.statusCode, body: json, headers: res.headers, raw });
        });
      });
      req.end(data);
    });
  }

  logs() {
    const tail = (f) => readText(f).split("\n").slice(-40).join("\n");
    return `--- hub log (${this.hubLog}), last lines:\n${tail(this.hubLog)}\n--- agent log, last lines:\n${tail(this.agentLog)}`;
  }

  // Runs one test body with a Scope; fails when the body throws or any page it opened logged a
  // console error, showed an error toast or threw. Contexts are closed either way. A failure
  // prints the hub's and agent's logs at close().
  async run(body) {
    const scope = new Scope(this);
    try {
      await body(scope);
      scope.assertClean();
    } catch (err) {
      this.failed = true;
      const pages = scope.report();
      if (pages) err.message += "\n" + pages;
      throw err;
    } finally {
      await scope.close();
    }
  }

  async close() {
    // Delete every terminal on this hub (the tests' own among them): the hub removes their containers.
    if (this.hub && this.hub.exitCode === null && this.token) {
      try {
        const list = await this.api("GET", "/api/v1/terminals");
        for (const t of list.body?.terminals ?? []) await this.api("DELETE", `/api/v1/terminals/${t.id}`);
      } catch {}
    }
    if (this.browser) await this.browser.close().catch(() => {});
    await stop(this.agent);
    await stop(this.hub);
    // Whatever the DELETEs did not get (a failed delete, a hub that died): removed by label.
    this.hubId ||= readText(path.join(this.dataDir, "hub-id")).trim();
    if (this.hubId) {
      removeContainers(this.hubId);
      hubIds.delete(this.hubId);
    }
    // A hub or agent built with sanitizers reports to its log: any report fails the file.
    const reports = [this.hubLog, this.agentLog].filter((f) =>
      /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/.test(readText(f)),
    );
    const kept = reports.map((f) => `--- ${path.basename(f)}:\n${readText(f)}`).join("\n");
    if (this.failed && !reports.length) process.stderr.write(this.logs() + "\n");
    if (process.env.REXEC_WEB_LOGS) {
      mkdirSync(process.env.REXEC_WEB_LOGS, { recursive: true });
      const name = path.basename(process.argv[1] ?? "web", ".test.mjs");
      for (const f of [this.hubLog, this.agentLog])
        if (existsSync(f)) copyFileSync(f, path.join(process.env.REXEC_WEB_LOGS, `${name}.${path.basename(f)}`));
    }
    rmSync(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
    if (reports.length) throw new Error(`a sanitizer reported an error:\n${kept}`);
  }
}

// The pages of one test: each records what its console said and any uncaught exception.
export class Scope {
  constructor(fx) {
    this.fx = fx;
    this.contexts = [];
    this.pages = [];
    this.allowed = [];
  }

  // Console errors a test causes on purpose (sockets refused while it has the hub down).
  allowErrors(pattern) {
    this.allowed.push(pattern);
  }

  async context(options = {}) {
    const ctx = await this.fx.browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
    this.contexts.push(ctx);
    return ctx;
  }

  // A page in ctx (a fresh context without a cookie when none is given).
  async page(ctx, label) {
    ctx = ctx ?? (await this.context());
    const page = await ctx.newPage();
    const rec = { label: label ?? `page ${this.pages.length + 1}`, page, errors: [], log: [] };
    page.on("console", (m) => {
      const where = m.location()?.url ?? "";
      rec.log.push(`[${m.type()}] ${m.text()} ${where}`);
      if (m.type() === "error") rec.errors.push(`console error: ${m.text()} (${where}, url ${page.url()})`);
    });
    page.on("pageerror", (e) => rec.errors.push(`uncaught exception: ${e.stack || e.message} (url ${page.url()})`));
    // The page's own error toasts (an API call it made failed) count as errors too: reported
    // through a binding as each appears, since toasts remove themselves after a few seconds.
    await page.exposeBinding("__rexecErrorToast", (_source, text) => rec.errors.push(`error toast: "${text}" (url ${page.url()})`));
    await page.addInitScript(() => {
      const seen = new WeakSet();
      const check = (node) => {
        if (!(node instanceof Element)) return;
        for (const el of [node, ...node.querySelectorAll("[data-testid=toast]")])
          if (el.matches("[data-testid=toast][data-tone=error]") && !seen.has(el)) {
            seen.add(el);
            window.__rexecErrorToast(el.firstChild?.textContent ?? el.textContent);
          }
      };
      new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(check))).observe(document, {
        childList: true,
        subtree: true,
      });
    });
    this.pages.push(rec);
    return page;
  }

  // A browser context signed in as the admin: POST /api/v1/sessions from the context, so the
  // session cookie lands in its jar exactly as the login page's request would leave it.
  async signedInContext(options, token = this.fx.token) {
    const ctx = await this.context(options);
    const res = await ctx.request.post(`${this.fx.url}/api/v1/sessions`, { data: { token } });
    if (res.status() !== 201) throw new Error(`POST /api/v1/sessions: ${res.status()} ${await res.text()}`);
    return ctx;
  }

  assertClean() {
    for (const r of this.pages) r.errors = r.errors.filter((e) => !this.allowed.some((p) => p.test(e)));
    const bad = this.pages.filter((r) => r.errors.length);
    if (bad.length)
      throw new Error("pages reported errors:\n" + bad.map((r) => `${r.label}:\n  ${r.errors.join("\n  ")}`).join("\n"));
  }

  report() {
    return this.pages
      .filter((r) => r.log.length || r.errors.length)
      .map((r) => `--- ${r.label} (${r.page.isClosed() ? "closed" : r.page.url()}) console:\n  ${[...r.log, ...r.errors].join("\n  ")}`)
      .join("\n");
  }

  async close() {
    for (const ctx of this.contexts) await ctx.close().catch(() => {});
  }
}

// ---- terminals in a page ----
// `which`: "page" for the dashboard's terminal and share pages (window.__rexec.term), "embed" for
// web/examples/embed.html (window.rexecEmbed.terminal).

// The terminal's buffer as logical lines (wrapped rows joined), right-trimmed.
export async function termLines(page, which = "page") {
  return page.evaluate((which) => {
    const term = which === "embed" ? window.rexecEmbed?.terminal : window.__rexec?.term;
    if (!term) return null;
    const b = term.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      if (line.isWrapped && out.length) out[out.length - 1] += s;
      else out.push(s);
    }
    return out;
  }, which);
}

export async function termSize(page, which = "page") {
  return page.evaluate((which) => {
    const term = which === "embed" ? window.rexecEmbed?.terminal : window.__rexec?.term;
    return term ? { cols: term.cols, rows: term.rows } : null;
  }, which);
}

// Waits until some line of the buffer satisfies match (a string: equal; a RegExp: matches);
// returns the lines.
export async function waitForLine(page, match, { which = "page", timeout = 15000 } = {}) {
  const test = typeof match === "string" ? (l) => l === match : (l) => match.test(l);
  let lines = null;
  try {
    return await waitFor(
      async () => {
        lines = await termLines(page, which);
        return lines && lines.some(test) && lines;
      },
      { timeout, what: `a terminal line ${match}` },
    );
  } catch (err) {
    err.message += `\nterminal buffer:\n${(lines ?? ["(no terminal)"]).filter((l) => l !== "").join("\n")}`;
    throw err;
  }
}

// Gives the terminal the keyboard and types a line the way a person does, then Enter.
export async function typeLine(page, text, which = "page") {
  await waitFor(
    () =>
      page.evaluate((which) => {
        const term = which === "embed" ? window.rexecEmbed?.terminal : window.__rexec?.term;
        if (!term) return false;
        term.focus();
        return document.activeElement?.classList.contains("xterm-helper-textarea") ?? false;
      }, which),
    { what: "the terminal to take the keyboard" },
  );
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

// A shell command whose output line differs from its echo: `echo "TAG-$((a+b))"` prints TAG-<sum>,
// while the echoed command line holds the expression. Returns {command, output}.
export function marker(tag) {
  const a = 10 + Math.floor(Math.random() * 80);
  const b = 10 + Math.floor(Math.random() * 80);
  const t = `${tag}-${runId}`;
  return { command: `echo "${t}-$((${a}+${b}))"`, output: `${t}-${a + b}`, text: t };
}

export async function waitForShell(page, which = "page") {
  // A prompt (any non-blank line) means the socket is open and the shell printed.
  await waitFor(async () => (await termLines(page, which))?.some((l) => l.trim() !== ""), {
    timeout: 15000,
    what: "the terminal to show the shell's prompt",
  });
}

// How many pixels of a PNG (a Playwright screenshot) are brighter than `threshold` (0..255, the
// brightest channel): decoded by Chromium itself, in a blank page of its own context.
export async function brightPixels(browser, png, threshold = 96) {
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    return await page.evaluate(
      async ({ b64, threshold }) => {
        const img = new Image();
        img.src = "data:image/png;base64," + b64;
        await img.decode();
        const c = document.createElement("canvas");
        c.width = img.width;
        c.height = img.height;
        const g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) > threshold) n++;
        return n;
      },
      { b64: png.toString("base64"), threshold },
    );
  } finally {
    await ctx.close();
  }
}
