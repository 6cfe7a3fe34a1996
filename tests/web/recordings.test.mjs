// Recordings in the browser: a terminal's output is recorded as it runs; the terminal page links
// to its recordings, the list plays, downloads and deletes them, and /r/{id} plays one in
// asciinema-player (seek, speed). A recording whose terminal still runs cannot be deleted: the
// page shows the hub's reason. An unknown recording says so instead of a blank page.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { screenshotDir, setup, skipReason, sleep, typeLine, waitFor, waitForLine, waitForShell } from "./fixture.mjs";

const row = (id) => `[data-testid=recording-row][data-recording-id="${id}"]`;

// The player's screen as lines (its text layer: one .ap-line per row), right-trimmed.
function screen(page) {
  return page.evaluate(() => {
    const el = document.querySelector("[data-testid=player] .ap-term-text");
    return el ? [...el.querySelectorAll(".ap-line")].map((l) => l.textContent.trimEnd()) : null;
  });
}

async function waitForScreen(page, test, what, timeout = 30000) {
  let lines = null;
  try {
    return await waitFor(
      async () => {
        lines = await screen(page);
        return lines && test(lines) && lines;
      },
      { timeout, what },
    );
  } catch (err) {
    err.message += `\nplayer screen:\n${(lines ?? ["(no player)"]).filter((l) => l).join("\n")}`;
    throw err;
  }
}

// With REXEC_SCREENSHOTS: a picture of the page for a person to look at.
async function shot(page, name) {
  if (!screenshotDir) return;
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, name) });
}

const elapsed = (page) => page.locator("[data-testid=player] .ap-time-elapsed").textContent();
const now = (page) => page.evaluate(() => window.__player.getCurrentTime());

// How fast the player's clock runs against the page's own clock, over `ms` of playing (measured
// in the page: no round trips in the sample).
function rate(page, ms = 500) {
  return page.evaluate(async (ms) => {
    const t0 = window.__player.getCurrentTime();
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    return (window.__player.getCurrentTime() - t0) / ((performance.now() - w0) / 1000);
  }, ms);
}

// A page the hub serves as the dashboard's index.html (its route table lists it), or a clear failure.
async function open(page, url) {
  const res = await page.goto(url);
  assert.equal(res.status(), 200, `GET ${new URL(url).pathname} answered ${res.status()}: the hub does not serve this dashboard page (its page list in hub/api/api.cpp)`);
}

describe("recordings", { skip: skipReason({ docker: false }) }, () => {
  let fx;
  before(async () => {
    fx = await setup({ docker: false });
  });
  after(async () => {
    await fx?.close();
  });

  test("the terminal's recordings: listed, played, seeked, sped up, downloaded; live ones not deleted", async () => {
    await fx.run(async (s) => {
      const t = await fx.createTerminal({ kind: "agent", agent: "e2e-box", name: "rec-shell" });
      const page = await s.page(await s.signedInContext(), "recordings");
      await page.goto(`${fx.url}/t/${t.id}`);
      await waitForShell(page);
      // Output at a few seconds in, and more after it: the start, the marker and the end differ.
      await sleep(1500);
      await typeLine(page, "echo REC-$((6*7))");
      await waitForLine(page, "REC-42");
      await sleep(3000);
      await typeLine(page, "echo END-$((5*5))");
      await waitForLine(page, "END-25");

      // The hub writes the file off its loop: wait until it holds both.
      const rec = await waitFor(
        async () => {
          const list = await fx.api("GET", `/api/v1/recordings?terminal=${t.id}`);
          const r = list.body?.recordings?.[0];
          if (!r) return null;
          const cast = await fx.api("GET", `/api/v1/recordings/${r.id}.cast`);
          return cast.status === 200 && cast.raw.toString("utf8").includes("END-25") && r;
        },
        { timeout: 15000, what: "the recording to hold END-25" },
      );
      assert.equal(rec.live, true);

      // The terminal page's link: this terminal's recordings only.
      await page.getByTestId("recordings-link").click();
      await page.waitForURL((u) => u.pathname === "/recordings" && u.searchParams.get("terminal") === t.id);
      await page.locator(row(rec.id)).waitFor();
      const shown = await page.$$eval("[data-testid=recording-row]", (els) => els.map((e) => e.dataset.terminalId));
      assert.deepEqual(shown, [t.id], "?terminal= lists only that terminal's recordings");
      const cells = await page.locator(row(rec.id)).evaluate((el) => ({
        text: el.textContent,
        kind: el.querySelector(".badge[data-kind]")?.textContent,
        live: !!el.querySelector("[data-testid=live]"),
        duration: el.querySelector("[data-testid=duration]")?.textContent,
        size: el.querySelector("[data-testid=size]")?.textContent,
        play: el.querySelector("[data-testid=play]")?.getAttribute("href"),
      }));
      assert.ok(cells.text.includes("rec-shell"), cells.text);
      assert.equal(cells.kind, "agent");
      assert.equal(cells.live, true);
      assert.match(cells.duration, /^\d+:\d\d$/);
      assert.match(cells.size, /^\d+(\.\d)? (B|KiB)$/);
      assert.equal(cells.play, `/r/${rec.id}`);
      await shot(page, "recordings.png");

      // All of them, loaded afresh: the fixture's own terminal is recorded too; newest first.
      await open(page, `${fx.url}/recordings`);
      await page.locator(row(rec.id)).waitFor();
      const all = await page.$$eval("[data-testid=recording-row]", (els) => els.map((e) => e.dataset.terminalId));
      assert.ok(all.includes(fx.agentTerminal.id) && all.includes(t.id), JSON.stringify(all));
      const listed = (await fx.api("GET", "/api/v1/recordings")).body.recordings.map((r) => r.terminal);
      assert.deepEqual(all, listed, "the page lists them in the hub's order (newest first)");

      // A page at a time (before = the last page's next_before): the same list, in the same order.
      await open(page, `${fx.url}/recordings?limit=1`);
      await page.locator("[data-testid=recording-row]").first().waitFor();
      assert.equal(await page.locator("[data-testid=recording-row]").count(), 1);
      // A full page may be the last: the next one is then empty, and its next_before null.
      const more = page.getByTestId("more");
      for (let pages = 1; await more.isVisible(); pages++) {
        assert.ok(pages <= listed.length, "more pages than recordings");
        await more.click();
        await waitFor(() => more.evaluate((b) => !b.disabled || b.hidden), { what: `page ${pages + 1}` });
      }
      assert.deepEqual(await page.$$eval("[data-testid=recording-row]", (els) => els.map((e) => e.dataset.terminalId)), listed);

      // Live: Delete is refused, and the page says the hub's reason.
      s.allowErrors(/Failed to load resource: the server responded with a status of 409/);
      await page.locator(`${row(rec.id)} [data-testid=delete]`).click();
      await page.getByTestId("confirm-ok").click();
      const refusal = page.locator(`${row(rec.id)} [data-testid=recording-error]`);
      await refusal.waitFor();
      assert.match(await refusal.textContent(), /still being written: delete its terminal first/);

      // Play: the player shows the marker (at 1x, autoplayed).
      await page.locator(`${row(rec.id)} [data-testid=play]`).click();
      await page.waitForURL((u) => u.pathname === `/r/${rec.id}`);
      await waitForScreen(page, (l) => l.includes("REC-42"), "the player to show REC-42");
      const duration = await page.evaluate(() => window.__player.getDuration());
      assert.ok(duration > 4 && duration < 120, `duration ${duration}`);

      // Seek by the progress bar, near its start: back before the marker.
      await page.evaluate(() => window.__player.pause());
      const bar = await page.locator("[data-testid=player] .ap-progressbar .ap-bar").boundingBox();
      await page.mouse.click(bar.x + 2, bar.y + bar.height / 2);
      await waitFor(async () => (await now(page)) < 0.5, { what: "the progress bar to seek near 0" });
      await waitForScreen(page, (l) => !l.some((x) => x.includes("REC-42")), "the screen without REC-42 near the start");
      assert.equal(await elapsed(page), "00:00");

      // And by the player's API: to the end, where both markers are on the screen.
      await page.evaluate(() => window.__player.seek("100%"));
      await waitForScreen(page, (l) => l.includes("REC-42") && l.includes("END-25"), "the screen at the end");
      await shot(page, "recording-player.png");
      await waitFor(async () => (await elapsed(page)) !== "00:00", { what: "the time shown to move to the end" });
      await page.evaluate(() => window.__player.seek(0));
      await waitForScreen(page, (l) => !l.some((x) => x.includes("REC-42")), "the screen back at the start");
      assert.equal(await elapsed(page), "00:00");

      // Speed: at 1x the clock keeps the wall's pace; at 4x four times it.
      await page.evaluate(() => window.__player.play());
      const normal = await rate(page);
      assert.ok(normal > 0.6 && normal < 1.6, `1x plays at ${normal.toFixed(2)}x`);
      await page.evaluate(() => window.__player.pause());
      const at = await now(page);
      await page.evaluate(() => {
        window.__first = window.__player;
      });
      await page.getByTestId("speed").selectOption("4");
      await page.locator("[data-testid=player][data-speed='4']").waitFor();
      await waitFor(() => page.evaluate(() => window.__player !== window.__first && document.querySelector("[data-testid=player]").dataset.state !== "loading"), {
        what: "a player at 4x, ready",
      });
      const resumed = await now(page);
      assert.ok(Math.abs(resumed - at) < 0.3, `the 4x player starts where the other was (${at}), not at ${resumed}`);
      assert.equal(await page.getByTestId("player").getAttribute("data-state"), "paused", "paused stays paused");
      await page.evaluate(() => window.__player.play());
      const fast = await rate(page);
      assert.ok(fast > 2.8 && fast < 5.5, `4x plays at ${fast.toFixed(2)}x`);
      await waitForScreen(page, (l) => l.includes("END-25"), "the 4x player to reach the end", 15000);

      // Download .cast: same-origin, the session cookie authorises it; asciicast v2.
      const href = await page.getByTestId("download").getAttribute("href");
      assert.equal(href, `/api/v1/recordings/${rec.id}.cast`);
      assert.match((await page.getByTestId("download").getAttribute("download")) ?? "", /\.cast$/);
      const res = await page.request.get(new URL(href, fx.url).href);
      assert.equal(res.status(), 200);
      assert.match(res.headers()["content-type"] ?? "", /application\/x-asciicast/);
      const body = await res.text();
      const header = JSON.parse(body.split("\n")[0]);
      assert.equal(header.version, 2);
      assert.ok(body.includes("REC-42"), "the downloaded file holds the marker");
      // Without the cookie: not authorised.
      const anonymous = await (await s.context()).request.get(new URL(href, fx.url).href);
      assert.equal(anonymous.status(), 401);

      // Loaded afresh, /r/{id} plays too.
      await open(page, `${fx.url}/r/${rec.id}`);
      await waitForScreen(page, (l) => l.includes("REC-42"), "the reloaded player to show REC-42");

      // Its terminal gone, the recording stays, no longer live, and now it can be deleted.
      assert.equal((await fx.api("DELETE", `/api/v1/terminals/${t.id}`)).status, 200);
      await waitFor(async () => (await fx.api("GET", `/api/v1/recordings/${rec.id}`)).body?.live === false, {
        what: "the recording to end with its terminal",
      });
      await open(page, `${fx.url}/recordings?terminal=${t.id}`);
      await page.locator(row(rec.id)).waitFor();
      assert.equal(await page.locator(`${row(rec.id)} [data-testid=live]`).count(), 0);
      await page.locator(`${row(rec.id)} [data-testid=delete]`).click();
      await page.getByTestId("confirm-ok").click();
      await page.locator(row(rec.id)).waitFor({ state: "detached" });
      await page.getByTestId("recordings-empty").waitFor();
      assert.equal((await fx.api("GET", `/api/v1/recordings/${rec.id}`)).status, 404);
    });
  });

  test("a long recording streams: the player fetches the segments it plays, never the whole file", async () => {
    await fx.run(async (s) => {
      const t = await fx.createTerminal({ kind: "agent", agent: "e2e-box", name: "long-shell" });
      const page = await s.page(await s.signedInContext(), "long recording");
      await page.goto(`${fx.url}/t/${t.id}`);
      await waitForShell(page);
      // About 8 MB of output (eight segments of the hub's ~1 MiB), then a last line.
      await typeLine(page, "seq -f 'row %06.0f ................................................................................' 1 80000; echo TAIL-$((7*11))");
      await waitForLine(page, "TAIL-77", { timeout: 90000 });
      const rec = await waitFor(
        async () => {
          const r = (await fx.api("GET", `/api/v1/recordings?terminal=${t.id}`)).body?.recordings?.[0];
          if (!r) return null;
          const index = await fx.api("GET", `/api/v1/recordings/${r.id}/segments`);
          return index.status === 200 && index.body.duration > 0 && r.bytes > 7000000 && { ...r, index: index.body };
        },
        { timeout: 20000, what: "the recording to hold the long output" },
      );
      // The recording as it is now (it goes on while the shell lives: the page sees at least this).
      const full = (await fx.api("GET", `/api/v1/recordings/${rec.id}`)).body;
      assert.ok(rec.index.segments.length >= 7, `${rec.index.segments.length} segments`);

      // What the page fetches from the hub for the recording.
      const fetched = [];
      page.on("response", async (res) => {
        const url = new URL(res.url());
        if (!url.pathname.startsWith("/api/v1/recordings/")) return;
        const body = await res.body().catch(() => Buffer.alloc(0));
        fetched.push({ path: url.pathname + url.search, status: res.status(), bytes: body.length });
      });
      const segmentsFetched = () => fetched.filter((f) => /\/segments\/\d+/.test(f.path));
      await open(page, `${fx.url}/r/${rec.id}`);
      await waitFor(async () => (await page.getByTestId("player").getAttribute("data-state")) !== "loading", { what: "the player to load" });
      await page.evaluate(() => window.__player.pause());
      const duration = await page.evaluate(() => window.__player.getDuration());
      assert.ok(duration > 0, `duration ${duration}`);
      assert.ok(fetched.some((f) => f.path === `/api/v1/recordings/${rec.id}/segments` && f.status === 200), JSON.stringify(fetched));
      assert.ok(segmentsFetched().length <= 2, `at the start, ${segmentsFetched().length} segments fetched: ${JSON.stringify(fetched)}`);
      const bytesFetched = () => fetched.reduce((n, f) => n + f.bytes, 0);
      const atLoad = bytesFetched();
      assert.ok(atLoad < full.bytes * 0.4, `to start playing, the page fetched ${atLoad} bytes of a ${full.bytes}-byte recording`);

      // Seek to the end: the last segment comes, and its screen is the end of the output.
      await page.evaluate(() => window.__player.seek("100%"));
      await waitForScreen(page, (l) => l.some((x) => x.includes("TAIL-77")) && l.some((x) => x.startsWith("row 080000")), "the end of the output after a seek");
      // And to the middle: a row from there, painted from that segment's snapshot and events.
      // And into the middle of the output (its second segment): rows from there, painted from
      // that segment's snapshot and events, none of the end.
      const [, second, third] = rec.index.segments;
      await page.evaluate((t) => window.__player.seek(t), (second.start + third.start) / 2);
      await waitForScreen(page, (l) => l.some((x) => /^row 0[0-3]\d{4} /.test(x)) && !l.some((x) => x.includes("TAIL-77")), "the middle of the output after a seek");
      assert.ok(segmentsFetched().some((f) => f.path.startsWith(`/api/v1/recordings/${rec.id}/segments/1?`)), JSON.stringify(fetched));
      const seen = segmentsFetched();
      assert.ok(seen.every((f) => f.status === 200), JSON.stringify(seen));
      assert.ok(!fetched.some((f) => f.path.endsWith(".cast")), "the page fetched the whole .cast");
      const total = bytesFetched();
      assert.ok(seen.length < rec.index.segments.length + 1, JSON.stringify(seen));
      assert.ok(total < full.bytes * 0.9, `the page fetched ${total} bytes of a ${full.bytes}-byte recording`);
      console.log(
        `# streamed player: ${rec.index.segments.length} segments; to play ${atLoad} bytes (${(atLoad / full.bytes).toFixed(2)}x the file), ` +
          `after two seeks ${seen.length} segment fetches, ${total} bytes (${(total / full.bytes).toFixed(2)}x of ${full.bytes})`,
      );
      assert.equal((await fx.api("DELETE", `/api/v1/terminals/${t.id}`)).status, 200);
    });
  });

  test("a recording share link plays for someone with no account, and not once it is deleted", async () => {
    await fx.run(async (s) => {
      const t = await fx.createTerminal({ kind: "agent", agent: "e2e-box", name: "shared-shell" });
      const owner = await s.page(await s.signedInContext(), "owner");
      await owner.goto(`${fx.url}/t/${t.id}`);
      await waitForShell(owner);
      await typeLine(owner, "echo SHARED-$((8*8))");
      await waitForLine(owner, "SHARED-64");
      const rec = await waitFor(
        async () => {
          const r = (await fx.api("GET", `/api/v1/recordings?terminal=${t.id}`)).body?.recordings?.[0];
          if (!r) return null;
          const cast = await fx.api("GET", `/api/v1/recordings/${r.id}.cast`);
          return cast.raw.toString("utf8").includes("SHARED-64") && r;
        },
        { timeout: 15000, what: "the recording to hold SHARED-64" },
      );
      const share = await fx.api("POST", `/api/v1/recordings/${rec.id}/shares`, {});
      assert.equal(share.status, 201);
      assert.ok(share.body.url.endsWith(`/p/${share.body.code}`), share.body.url);

      // A fresh context: no cookie, no token; the page plays what the code grants.
      const stranger = await s.page(undefined, "stranger");
      await open(stranger, `${fx.url}/p/${share.body.code}`);
      await waitForScreen(stranger, (lines) => lines.some((l) => l.includes("SHARED-64")), "the shared recording to play");
      assert.equal(new URL(stranger.url()).pathname, `/p/${share.body.code}`, "sent to sign in instead");
      assert.equal(await stranger.getByTestId("back").isHidden(), true);
      // Download .cast: fetched with the code on the click, saved as a file.
      const [download] = await Promise.all([stranger.waitForEvent("download"), stranger.getByTestId("download").click()]);
      assert.match(download.suggestedFilename(), /\.cast$/);
      const saved = readFileSync(await download.path(), "utf8");
      assert.equal(JSON.parse(saved.split("\n")[0]).version, 2);
      assert.ok(saved.includes("SHARED-64"), "the downloaded file holds the shared output");

      // Deleted: the same link is refused, and the page says so.
      assert.equal((await fx.api("DELETE", `/api/v1/recording-shares/${share.body.id}`)).status, 200);
      s.allowErrors(/Failed to load resource: the server responded with a status of 401/);
      const again = await s.page(undefined, "stranger again");
      await open(again, `${fx.url}/p/${share.body.code}`);
      const error = again.getByTestId("player-error");
      await error.waitFor();
      assert.match(await error.textContent(), /share link is not valid/);
      assert.equal((await fx.api("DELETE", `/api/v1/terminals/${t.id}`)).status, 200);
    });
  });

  test("an unknown recording says so", async () => {
    await fx.run(async (s) => {
      s.allowErrors(/Failed to load resource: the server responded with a status of 404/);
      const page = await s.page(await s.signedInContext(), "unknown recording");
      await open(page, `${fx.url}/r/r_nosuchrecording`);
      const error = page.getByTestId("player-error");
      await error.waitFor();
      assert.match(await error.textContent(), /no recording "r_nosuchrecording"/);
    });
  });
});
