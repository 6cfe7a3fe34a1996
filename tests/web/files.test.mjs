// Files on the terminal page (docs/files.md), in a real browser against a real hub and agent on
// this machine (so what an upload wrote is read straight from disk): two files dropped on the
// terminal, each with its progress bar to done; the panel lists them, enters a directory and
// comes back by ".."; a download by its link is the same bytes; a second drop of a name offers
// Overwrite; and Cancel on a 200 MB upload leaves nothing, as the API's own listing says.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { screenshotDir, setup, skipReason, waitFor, waitForShell } from "./fixture.mjs";

const upload = (name) => `[data-testid=upload][data-name="${name}"]`;
const entry = (name) => `[data-testid=file-entry][data-name="${name}"]`;

// How many open descriptors of any process here are of files in `dir`: the agent writes an upload
// to an unnamed O_TMPFILE there, which has no name to list but shows in /proc as "DIR/#INODE (deleted)".
function openIn(dir) {
  let n = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let fds = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir + "/")) n++;
      } catch {}
    }
  }
  return n;
}

// Drags files onto the terminal the way a browser does: dragenter, dragover, drop on the xterm
// element, with a DataTransfer made in the page. `files`: [{name, b64}] or [{name, mib}] (that
// many MiB of zeros, made in the page: a large upload without shipping it through the test).
async function dropFiles(page, files) {
  await page.evaluate((files) => {
    const dt = new DataTransfer();
    for (const f of files) {
      const parts = f.b64 !== undefined ? [Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))] : Array.from({ length: f.mib }, () => new Uint8Array(1 << 20));
      dt.items.add(new File(parts, f.name));
    }
    window.__drag = dt;
    const zone = document.querySelector("[data-testid=terminal-view]");
    for (const type of ["dragenter", "dragover"]) zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files);
  // While a drag with files is over it, the terminal says where they will go.
  const overlay = page.getByTestId("drop-overlay");
  await overlay.waitFor();
  const said = await overlay.textContent();
  await page.evaluate(() => {
    const zone = document.querySelector("[data-testid=terminal-view]");
    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: window.__drag, bubbles: true, cancelable: true }));
    delete window.__drag;
  });
  await overlay.waitFor({ state: "hidden" });
  return said;
}

// The names in the panel's list, in its order ("sub/" for a directory).
function listed(page) {
  return page.$$eval("[data-testid=file-entry]", (els) => els.map((e) => e.dataset.name + (e.dataset.dir === "true" ? "/" : "")));
}

async function shot(page, name) {
  if (!screenshotDir) return;
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, name) });
}

describe("files", { skip: skipReason({ docker: false }) }, () => {
  let fx;
  let remote;
  before(async () => {
    fx = await setup({ docker: false });
    remote = mkdtempSync(path.join(tmpdir(), "rexec-web-files-"));
  });
  after(async () => {
    await fx?.close();
    if (remote) rmSync(remote, { recursive: true, force: true });
  });

  test("drop two files, browse, download, overwrite, and cancel a 200 MB upload", async () => {
    await fx.run(async (s) => {
      const t = fx.agentTerminal;
      const list = async (p) => (await fx.api("GET", `/api/v1/terminals/${t.id}/files?path=${encodeURIComponent(p)}&list=1`)).body;
      mkdirSync(path.join(remote, "sub"));
      writeFileSync(path.join(remote, "sub", "inner.txt"), "inside\n");
      const text = Buffer.from(`notes ${Date.now()}\nline two\n`);
      const binary = randomBytes(300 * 1024 + 5);

      const page = await s.page(await s.signedInContext(), "files");
      await page.goto(`${fx.url}/t/${t.id}`);
      await waitForShell(page);

      // Files: the panel opens on the home directory; the path box goes anywhere.
      const panel = page.getByTestId("files-panel");
      assert.equal(await panel.isHidden(), true);
      await page.getByTestId("files-button").click();
      await page.locator("[data-testid=files-panel][data-dir='.']").waitFor();
      assert.equal(await page.getByTestId("files-button").getAttribute("aria-expanded"), "true");
      assert.equal(await page.getByTestId("files-path").inputValue(), "~");
      await page.getByTestId("files-path").fill(remote + "/");
      await page.getByTestId("files-path").press("Enter");
      await page.locator(`[data-testid=files-panel][data-dir="${remote}"]`).waitFor();
      await waitFor(async () => JSON.stringify(await listed(page)) === JSON.stringify(["sub/"]), { what: "the directory listed" });
      assert.equal(await page.getByTestId("files-up").count(), 1, '".." above an absolute directory');

      // Two files dropped at once: one bar each, both to done, both on disk byte for byte.
      const said = await dropFiles(page, [
        { name: "a.txt", b64: text.toString("base64") },
        { name: "b.bin", b64: binary.toString("base64") },
      ]);
      assert.match(said, new RegExp(`Drop to upload to ${remote.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
      for (const name of ["a.txt", "b.bin"]) {
        await page.locator(`${upload(name)}[data-state=done]`).waitFor({ timeout: 30000 });
        assert.equal(await page.locator(`${upload(name)} progress`).evaluate((p) => p.value), 1, `${name}'s bar full`);
      }
      assert.equal(await page.locator("[data-testid=upload]").count(), 2);
      assert.ok(readFileSync(path.join(remote, "a.txt")).equals(text), "a.txt on disk");
      assert.ok(readFileSync(path.join(remote, "b.bin")).equals(binary), "b.bin on disk");
      await waitFor(async () => JSON.stringify(await listed(page)) === JSON.stringify(["sub/", "a.txt", "b.bin"]), {
        what: "the panel to list both uploads",
      });
      const size = await page.locator(`${entry("b.bin")} .files-meta`).textContent();
      assert.equal(size, "300 KiB");
      await shot(page, "files.png");

      // Into a directory and back up by "..", worked out in the page (the API refuses "..").
      await page.locator(`${entry("sub")} button`).click();
      await page.locator(`[data-testid=files-panel][data-dir="${remote}/sub"]`).waitFor();
      await waitFor(async () => JSON.stringify(await listed(page)) === JSON.stringify(["inner.txt"]), { what: "sub listed" });
      await page.getByTestId("files-up").click();
      await page.locator(`[data-testid=files-panel][data-dir="${remote}"]`).waitFor();
      await waitFor(async () => (await listed(page)).includes("b.bin"), { what: "back in the directory" });

      // Download: a plain link to the GET, authorised by the session cookie; the same bytes.
      const link = page.locator(`${entry("b.bin")} a`);
      assert.equal(await link.getAttribute("href"), `/api/v1/terminals/${t.id}/files?path=${encodeURIComponent(remote + "/b.bin")}`);
      assert.equal(await link.getAttribute("download"), "b.bin");
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      assert.equal(download.suggestedFilename(), "b.bin");
      assert.ok(readFileSync(await download.path()).equals(binary), "the download is the file's bytes");

      // The same name again: the hub's "exists", and Overwrite replaces it.
      s.allowErrors(/Failed to load resource: the server responded with a status of 409/);
      const newer = Buffer.from("newer\n");
      await dropFiles(page, [{ name: "a.txt", b64: newer.toString("base64") }]);
      const refused = page.locator(`${upload("a.txt")}[data-state=exists]`);
      await refused.waitFor({ timeout: 30000 });
      assert.match(await refused.textContent(), /already there/);
      assert.ok(readFileSync(path.join(remote, "a.txt")).equals(text), "refused: the old file stays");
      await refused.getByTestId("upload-overwrite").click();
      await waitFor(async () => (await page.locator(`${upload("a.txt")}[data-state=done]`).count()) === 2, { timeout: 30000, what: "the overwrite done" });
      assert.ok(readFileSync(path.join(remote, "a.txt")).equals(newer), "overwritten");

      // Cancel a 200 MB upload once it is under way (held to 8 MB/s, so it is still going when
      // the button is pressed): the hub cancels, the agent drops its temp file, nothing is left.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 8 * 1024 * 1024 });
      await dropFiles(page, [{ name: "huge.bin", mib: 200 }]);
      const huge = page.locator(upload("huge.bin"));
      await waitFor(async () => (await huge.locator("progress").evaluate((p) => p.value)) > 0, { timeout: 30000, what: "huge.bin's bar to move" });
      await waitFor(() => openIn(remote) > 0, { timeout: 30000, what: "the agent writing huge.bin's temp file" });
      assert.equal(await huge.getAttribute("data-state"), "uploading");
      await huge.getByTestId("upload-cancel").click();
      await page.locator(`${upload("huge.bin")}[data-state=cancelled]`).waitFor();
      await waitFor(() => openIn(remote) === 0, { timeout: 30000, what: "the agent to let go of the temp file" });
      const left = await waitFor(
        async () => {
          const names = (await list(remote)).entries.map((e) => e.name);
          return JSON.stringify(names) === JSON.stringify(["a.txt", "b.bin", "sub"]) && names;
        },
        { timeout: 30000, what: "the API to list only a.txt, b.bin, sub" },
      );
      assert.deepEqual(left, ["a.txt", "b.bin", "sub"]);
      assert.deepEqual(readdirSync(remote).sort(), ["a.txt", "b.bin", "sub"], "nothing named on disk either");
      await cdp.detach();
    });
  });
});
