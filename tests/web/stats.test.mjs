// Stats end to end: the agent in a container samples /proc/stat every 5 s, the hub relays each
// STATS over the events socket, and the card's CPU sparkline plots it. Also the screenshots of
// the dashboard and of a terminal when REXEC_SCREENSHOTS names a directory.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fatal, runId, screenshotDir, setup, skipReason, typeLine, waitFor, waitForLine, waitForShell } from "./fixture.mjs";

const spark = (id) => `[data-testid=terminal-card][data-terminal-id="${id}"] [data-testid=cpu-sparkline]`;
const values = (page, id) =>
  page.locator(spark(id)).getAttribute("data-values").then((v) => (v ? v.split(",").map(Number) : []));

describe("stats", { skip: skipReason() }, () => {
  let fx;
  before(async () => {
    fx = await setup();
  });
  after(async () => {
    await fx?.close();
  });

  test("a busy container shows on its card's CPU sparkline", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext(), "dashboard");
      await page.goto(fx.url + "/");
      const id = fx.container.id;
      await page.locator(spark(id)).waitFor();
      // At least one sample before the load, so "before" means something.
      const before = await waitFor(async () => {
        const v = await values(page, id);
        return v.length > 0 && v;
      }, { timeout: 15000, what: "a first CPU sample on the container's card" });
      const beforeMax = Math.max(...before);

      // As many busy loops as the container has CPUs (the fixture gives it all of the host's),
      // until a file says stop; `timeout` ends them anyway if this test dies first.
      const stopFile = `/tmp/stop-${runId}`;
      const loop = `timeout 60 sh -c 'while [ ! -e ${stopFile} ]; do :; done'`;
      const argv = ["sh", "-c", `${Array(cpus().length).fill(loop + " &").join(" ")} wait`];
      // The target is the terminal's id: its agent's id (fx.container.agent) answers 404 from
      // /api/v1/exec (a container's agent is not listed as one of the user's agents).
      const busy = fx.api("POST", "/api/v1/exec", { targets: [id], argv, timeout_s: 90 });
      let failed = null;
      busy.then(
        (r) => r.status !== 200 && (failed = r),
        (err) => (failed = { status: "no answer", body: String(err) }),
      );
      let seen;
      try {
        seen = await waitFor(
          async () => {
            if (failed) throw fatal(`POST /api/v1/exec: ${failed.status} ${JSON.stringify(failed.body)}`);
            const now = await values(page, id);
            // The window slides once it is full; until then new samples are appended.
            const fresh = now.length > before.length ? now.slice(before.length) : now.slice(-1);
            const max = Math.max(...fresh);
            return max >= 40 && max > beforeMax + 20 && { before, now, max };
          },
          { timeout: 30000, interval: 250, what: `a CPU sample >= 40 and > ${beforeMax} + 20 on the card` },
        );
      } finally {
        // Stop the loops whatever happened (they would end by `timeout` anyway).
        await fx.api("POST", "/api/v1/exec", { targets: [id], argv: ["touch", stopFile], timeout_s: 10 }).catch(() => {});
      }
      const done = await busy;
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.results[0].exit_code, 0, `the busy loops ended by the stop file: ${JSON.stringify(done.body)}`);
      // The card's number agrees with the plot's newest point.
      const [label, plotted] = await page.locator(spark(id)).evaluate((el) => [el.getAttribute("aria-label"), el.dataset.values]);
      const shown = Number(/^CPU (\d+)%$/.exec(label)?.[1]);
      assert.ok(Math.abs(shown - Number(plotted.split(",").at(-1))) <= 1, `label "${label}" vs values ${plotted}`);
      process.stderr.write(`stats: before ${seen.before.join(",")} -> ${seen.now.join(",")}\n`);
    });
  });

  test("screenshots", { skip: !screenshotDir && "REXEC_SCREENSHOTS not set" }, async () => {
    mkdirSync(screenshotDir, { recursive: true });
    await fx.run(async (s) => {
      const ctx = await s.signedInContext({ viewport: { width: 1280, height: 800 } });
      const page = await s.page(ctx, "dashboard");
      await page.goto(fx.url + "/");
      // ~12 s of stats: three samples on every card.
      for (const t of [fx.container, fx.agentTerminal])
        await waitFor(async () => (await values(page, t.id)).length >= 3, { timeout: 30000, what: `3 CPU samples on ${t.id}` });
      await page.locator("[data-testid=machine]").first().waitFor();
      await page.screenshot({ path: path.join(screenshotDir, "dashboard.png") });

      const term = await s.page(ctx, "terminal");
      await term.goto(`${fx.url}/t/${fx.container.id}`);
      await waitForShell(term);
      await typeLine(term, "ls -la /");
      await waitForLine(term, /^total \d+$/);
      await typeLine(term, "cat /etc/os-release");
      await waitForLine(term, /^PRETTY_NAME="Debian GNU\/Linux 12/);
      await term.screenshot({ path: path.join(screenshotDir, "terminal.png") });
    });
  });
});
