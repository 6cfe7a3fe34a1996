// The embed widget on someone else's site: web/examples/embed.html served from a second origin
// (another port), attached by a control share link, typed into.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { marker, runId, setup, skipReason, typeLine, waitFor, waitForLine, waitForShell, webDir } from "./fixture.mjs";

describe("embed", { skip: skipReason() }, () => {
  let fx;
  let site;
  before(async () => {
    fx = await setup();
    // The other site: serves the example page and nothing else.
    const html = readFileSync(path.join(webDir, "examples", "embed.html"));
    site = createServer((req, res) => {
      if (new URL(req.url, "http://x").pathname !== "/embed.html") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(html);
    });
    await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    await new Promise((resolve) => (site ? site.close(resolve) : resolve()));
    await fx?.close();
  });

  test("embed.html on another origin shows the terminal and types through a control link", async () => {
    await fx.run(async (s) => {
      const id = fx.container.id;
      const r = await fx.api("POST", `/api/v1/terminals/${id}/shares`, { mode: "control" });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const origin = `http://127.0.0.1:${site.address().port}`;
      assert.notEqual(origin, fx.url);
      const q = new URLSearchParams({ hub: fx.url, share: r.body.code, terminal: id });
      const page = await s.page(undefined, "embed.html");
      await page.goto(`${origin}/embed.html?${q}`);
      await waitForShell(page, "embed");
      // Rendered, not only in the buffer: the prompt is in xterm's rows.
      await waitFor(async () => (await page.locator("#term .xterm-rows").textContent())?.includes("#"), {
        what: "the prompt rendered in #term .xterm-rows",
      });

      const word = `embed-ok-${runId}`;
      await typeLine(page, `echo ${word}`, "embed");
      await waitForLine(page, word, { which: "embed" });
      const rows = await page.locator("#term .xterm-rows > div").allTextContents();
      assert.ok(rows.some((row) => row.trimEnd() === word), `a rendered row is "${word}":\n${rows.join("\n")}`);
      assert.equal(await page.locator("#status").textContent(), "");
    });
  });
});
