// The dashboard's weight: app.js + app.css as the hub sends them to a browser that accepts gzip
// stay under 300 KiB. Needs only the hub (no Docker, no browser), so it never skips.
import assert from "node:assert/strict";
import { get } from "node:http";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { setup } from "./fixture.mjs";

const BUDGET = 300 * 1024;

function fetchRaw(url, headers) {
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

describe("size budget", () => {
  let fx;
  before(async () => {
    fx = await setup({ docker: false, browser: false, agent: false });
  });
  after(async () => {
    await fx?.close();
  });

  test("app.js + app.css under 300 KiB gzip, as served", async () => {
    const sizes = {};
    for (const [file, type] of [["/assets/app.js", /javascript/], ["/assets/app.css", /text\/css/]]) {
      const r = await fetchRaw(fx.url + file, { "Accept-Encoding": "gzip" });
      assert.equal(r.status, 200, file);
      assert.match(r.headers["content-type"] ?? "", type, file);
      assert.equal(r.headers["content-encoding"], "gzip", `${file} is sent gzip-compressed (docs/api.md, The dashboard)`);
      const plain = gunzipSync(r.body);
      assert.ok(plain.length > r.body.length, `${file} inflates`);
      // Without gzip accepted: the same file, uncompressed.
      const identity = await fetchRaw(fx.url + file, {});
      assert.equal(identity.headers["content-encoding"], undefined, file);
      assert.ok(identity.body.equals(plain), `${file}: the gzip body inflates to the plain one`);
      sizes[file] = r.body.length;
    }
    const total = sizes["/assets/app.js"] + sizes["/assets/app.css"];
    process.stderr.write(`budget: ${JSON.stringify(sizes)} total ${(total / 1024).toFixed(1)} KiB gzip\n`);
    assert.ok(total < BUDGET, `app.js + app.css = ${total} bytes gzip, budget ${BUDGET}`);
  });
});
