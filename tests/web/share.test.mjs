// Share links in a browser without an account: a view link watches and cannot type (the page
// sends nothing, and the hub refuses what a socket sends anyway); a control link types.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { marker, setup, skipReason, termLines, typeLine, waitForLine, waitForShell } from "./fixture.mjs";

describe("shares", { skip: skipReason() }, () => {
  let fx;
  before(async () => {
    fx = await setup();
  });
  after(async () => {
    await fx?.close();
  });

  const share = async (id, mode) => {
    const r = await fx.api("POST", `/api/v1/terminals/${id}/shares`, { mode });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.mode, mode);
    assert.equal(r.body.url, `${fx.url}/s/${r.body.code}`);
    return r.body;
  };

  test("a view link watches, cannot type, and its socket is refused input", async () => {
    await fx.run(async (s) => {
      const id = fx.agentTerminal.id;
      // The owner's own view of the terminal: what it shows is what the shell really got.
      const admin = await s.page(await s.signedInContext(), "owner /t");
      await admin.goto(`${fx.url}/t/${id}`);
      await waitForShell(admin);
      const before = marker("before-share");
      await typeLine(admin, before.command);
      await waitForLine(admin, before.output);

      const link = await share(id, "view");
      const viewer = await s.page(undefined, "view share"); // a fresh context: no cookie
      // What the page itself sends on its sockets (frames as Chromium saw them go out).
      const sockets = [];
      viewer.on("websocket", (ws) => {
        const rec = { url: ws.url(), sent: [] };
        ws.on("framesent", (f) => rec.sent.push(typeof f.payload === "string" ? Buffer.from(f.payload) : f.payload));
        sockets.push(rec);
      });
      await viewer.goto(link.url);
      await viewer.getByTestId("view-only").waitFor();
      await waitForLine(viewer, before.output);

      // Typed into the view page: the page sends nothing.
      const typed = marker("view-typed");
      await viewer.evaluate(() => window.__rexec.term.focus());
      await viewer.keyboard.type(typed.command);
      await viewer.keyboard.press("Enter");

      const pageSockets = [...sockets];
      assert.ok(pageSockets.some((w) => w.url.includes("/attach?")), `the share page's viewer socket: ${JSON.stringify(pageSockets)}`);

      // Sent on a socket of our own, as a share viewer: the hub says read_only and drops it.
      const raw = marker("view-raw");
      const wsUrl = `${fx.url.replace(/^http/, "ws")}/api/v1/terminals/${id}/attach?share=${encodeURIComponent(link.code)}`;
      const answer = await viewer.evaluate(
        ({ url, input }) =>
          new Promise((resolve) => {
            const ws = new WebSocket(url, "rexec.term.v1");
            ws.binaryType = "arraybuffer";
            const events = [];
            const done = (why) => {
              clearTimeout(timer);
              ws.onclose = null;
              ws.close(1000);
              resolve({ why, events, protocol: ws.protocol });
            };
            const timer = setTimeout(() => done("timeout"), 10000);
            ws.onopen = () => ws.send(new Uint8Array([0x01, ...new TextEncoder().encode(input)]));
            ws.onmessage = (m) => {
              const b = new Uint8Array(m.data);
              if (b[0] !== 0x82) return;
              const ev = JSON.parse(new TextDecoder().decode(b.subarray(1)));
              events.push(ev);
              if (ev.type === "error") done("error");
            };
            ws.onclose = (e) => done(`closed ${e.code} ${e.reason}`);
          }),
        { url: wsUrl, input: raw.command + "\r" },
      );
      assert.equal(answer.why, "error", JSON.stringify(answer));
      assert.equal(answer.protocol, "rexec.term.v1");
      assert.equal(answer.events.find((e) => e.type === "error").code, "read_only", JSON.stringify(answer.events));

      // The owner types after both: once that comes back, anything the view link had got
      // through would be on the screen before it.
      const sync = marker("sync");
      await typeLine(admin, sync.command);
      await waitForLine(admin, sync.output);
      await waitForLine(viewer, sync.output);
      const inputs = pageSockets.flatMap((w) => w.sent).filter((b) => b[0] === 0x01);
      assert.equal(inputs.length, 0, `the view page sent input frames: ${inputs.map((b) => b.toString("hex")).join(" ")}`);
      for (const [page, who] of [[admin, "owner"], [viewer, "viewer"]]) {
        const lines = await termLines(page);
        for (const m of [typed, raw])
          assert.ok(!lines.some((l) => l.includes(m.text)), `${who}'s screen shows "${m.text}":\n${lines.join("\n")}`);
      }
    });
  });

  test("a control link types", async () => {
    await fx.run(async (s) => {
      const id = fx.agentTerminal.id;
      const link = await share(id, "control");
      const page = await s.page(undefined, "control share");
      await page.goto(link.url);
      await page.getByTestId("control").waitFor();
      await waitForShell(page);
      const m = marker("control");
      await typeLine(page, m.command);
      await waitForLine(page, m.output);
    });
  });
});
