// The dashboard in a real browser: sign in through the login page, see the cards go green,
// make a container terminal from the page, then use it: type, resize, reload.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { brightPixels, marker, setup, skipReason, termLines, termSize, typeLine, waitFor, waitForLine, waitForShell } from "./fixture.mjs";

const card = (id) => `[data-testid=terminal-card][data-terminal-id="${id}"]`;
const light = (id) => `${card(id)} [data-status]`;

describe("dashboard", { skip: skipReason() }, () => {
  let fx;
  before(async () => {
    fx = await setup();
  });
  after(async () => {
    await fx?.close();
  });

  test("sign in, cards, new container terminal, type, resize, reload", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.context(), "dashboard");

      // Signed out, / sends us to the sign-in page; the token is typed, never put in a URL.
      await page.goto(fx.url + "/");
      await page.waitForURL("**/login");
      await page.getByTestId("login-token").pressSequentially(fx.token);
      await page.getByTestId("login-submit").click();
      await page.waitForURL((u) => u.pathname === "/");

      // Both terminals made through the API, each with a green light.
      for (const t of [fx.container, fx.agentTerminal]) {
        await page.locator(light(t.id)).first().waitFor();
        await waitFor(async () => (await page.locator(light(t.id)).first().getAttribute("data-status")) === "running", {
          what: `card ${t.id} running`,
        });
      }
      // Green: the light's colour, not only its attribute.
      const [r, g, b] = (await page.locator(light(fx.container.id)).first().evaluate((el) => getComputedStyle(el).backgroundColor))
        .match(/\d+/g)
        .map(Number);
      assert.ok(g > r + 40 && g > b, `a running light is green, got rgb(${r}, ${g}, ${b})`);
      const kinds = await page.$$eval("[data-testid=terminal-card] .badge", (els) => els.map((e) => e.textContent).sort());
      assert.deepEqual(kinds, ["agent", "container"]);
      const premade = new Set([fx.container.id, fx.agentTerminal.id]);

      // A container terminal from the page: New terminal -> container -> busybox -> Create.
      await page.getByTestId("create-terminal").click();
      await page.getByTestId("create-kind").selectOption("container");
      const image = page.getByTestId("create-image");
      await waitFor(
        () => image.evaluate((el) => !el.disabled && [...el.options].some((o) => o.value === "rexec/busybox:latest")),
        { what: "the image picker to list rexec/busybox:latest" },
      );
      await image.selectOption("rexec/busybox:latest");
      await page.getByTestId("create-submit").click();
      await page.locator("dialog[open]").waitFor({ state: "detached" });
      const id = await waitFor(
        () => page.$$eval("[data-testid=terminal-card]", (els) => els.map((e) => e.dataset.terminalId)).then((ids) => ids.find((i) => !premade.has(i))),
        { what: "the new terminal's card" },
      );
      await waitFor(async () => (await page.locator(light(id)).first().getAttribute("data-status")) === "running", {
        timeout: 30000,
        what: `the new card ${id} running`,
      });
      const made = (await fx.api("GET", `/api/v1/terminals/${id}`)).body;
      assert.equal(made.kind, "container");
      assert.equal(made.image, "rexec/busybox:latest");

      // Open it from its card.
      await page.locator(`${card(id)} [data-testid=card-open]`).click();
      await page.waitForURL((u) => u.pathname === `/t/${id}`);
      await page.getByTestId("terminal-view").waitFor();
      await waitForShell(page);

      await typeLine(page, "echo $((6*7))");
      await waitForLine(page, "42");

      // The PTY follows the window: stty in the shell says what xterm fitted.
      const sizeLine = async (n) => {
        const tag = `sz${n}-${Math.random().toString(36).slice(2, 8)}`;
        await typeLine(page, `echo "${tag} $(stty size)"`);
        const lines = await waitForLine(page, new RegExp(`^${tag} \\d+ \\d+$`));
        const [rows, cols] = lines.find((l) => l.startsWith(tag + " ")).split(" ").slice(1).map(Number);
        return { rows, cols };
      };
      const before = await sizeLine(1);
      // Created at the API's default 80x24; attaching told the PTY the window's size.
      assert.notDeepEqual(before, { rows: 24, cols: 80 });
      const old = await termSize(page);
      await page.setViewportSize({ width: 900, height: 560 });
      const fitted = await waitFor(
        async () => {
          const now = await termSize(page);
          return now.cols !== old.cols && now.rows !== old.rows && now;
        },
        { what: "xterm to refit to the smaller window" },
      );
      const afterResize = await sizeLine(2);
      assert.notEqual(afterResize.rows, before.rows);
      assert.notEqual(afterResize.cols, before.cols);
      assert.deepEqual(afterResize, { rows: fitted.rows, cols: fitted.cols });

      // Recent output comes back after a reload, once.
      const mark = marker("reload");
      await typeLine(page, mark.command);
      await waitForLine(page, mark.output);
      await page.reload();
      await page.getByTestId("terminal-view").waitFor();
      await waitForLine(page, mark.output);
      // Something typed after the reload has come back through the same socket, so all the replay
      // has been written: now count.
      const sync = marker("sync");
      await typeLine(page, sync.command);
      await waitForLine(page, sync.output);
      const lines = await termLines(page);
      assert.equal(lines.filter((l) => l === mark.output).length, 1, `"${mark.output}" once after the reload:\n${lines.join("\n")}`);
      assert.equal(lines.filter((l) => l === "42").length, 1, "earlier output replayed once too");
    });
  });

  // Drawn, not only in the buffer: a line of underscores shows up as pixels. With xterm's default
  // lineHeight 1 the DOM renderer's rows (overflow: hidden) clipped "_" in DejaVu Sans Mono, the
  // monospace font Linux browsers fall back to.
  test("a line of underscores is visible", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext(), "terminal");
      await page.goto(`${fx.url}/t/${fx.container.id}`);
      await waitForShell(page);
      const line = "_".repeat(40);
      // The command itself has no underscore: tr makes them.
      await typeLine(page, "head -c 40 /dev/zero | tr '\\0' '\\137'; echo");
      await waitForLine(page, line);
      const box = await waitFor(
        () =>
          page.evaluate((line) => {
            const row = [...document.querySelectorAll(".xterm-rows > div")].find((r) => r.textContent.trimEnd() === line);
            if (!row) return null;
            const span = document.createRange();
            span.selectNodeContents(row);
            const r = span.getBoundingClientRect();
            const rowBox = row.getBoundingClientRect();
            return { x: r.left, y: rowBox.top, width: r.width, height: rowBox.height };
          }, line),
        { what: "the underscores' row in the DOM" },
      );
      const png = await page.screenshot({ clip: box });
      const lit = await brightPixels(fx.browser, png);
      process.stderr.write(`underscores: ${lit} bright pixels in ${JSON.stringify(box)}\n`);
      assert.ok(lit >= 40, `the row of 40 underscores has ${lit} bright pixels (box ${JSON.stringify(box)})`);
    });
  });

  // Readable on a phone and usable without a mouse: at 390 px nothing runs off the side; Tab
  // reaches the buttons; Ctrl-K opens the palette, typing filters it, Enter opens the terminal.
  test("phone width and keyboard only", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext({ viewport: { width: 390, height: 844 } }), "phone");
      await page.goto(fx.url + "/");
      await page.locator(card(fx.container.id)).first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
      const box = await page.locator(card(fx.container.id)).first().boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `the card fits the screen: ${JSON.stringify(box)}`);

      // Tab order reaches "New terminal" (a real, focusable control).
      let reached = false;
      for (let i = 0; i < 15 && !reached; ++i) {
        await page.keyboard.press("Tab");
        reached = await page.evaluate(() => document.activeElement?.dataset?.testid === "create-terminal");
      }
      assert.ok(reached, "Tab reaches the New terminal button");

      await page.keyboard.press("Control+k");
      await page.getByTestId("palette-input").waitFor();
      await page.keyboard.type("e2e-debian");
      await waitFor(async () => (await page.getByTestId("palette-item").count()) >= 1, { what: "a palette match" });
      await page.keyboard.press("Enter");
      await page.waitForURL((u) => u.pathname === `/t/${fx.container.id}`);
      await waitForShell(page);
      const size = await termSize(page);
      assert.ok(size.cols >= 20 && size.cols < 80, `the terminal fits the phone: ${JSON.stringify(size)}`);
    });
  });

  // The terminal page's socket dropped (the hub killed and restarted mid-stream): it comes back
  // by itself with ?since= and every line is there exactly once, in order.
  test("a dropped connection resumes without losing or repeating a line", async () => {
    await fx.run(async (s) => {
      // Refused while the hub is down: expected, for the socket and for the status fetches alike.
      s.allowErrors(/WebSocket connection to .* failed/);
      s.allowErrors(/net::ERR_CONNECTION_REFUSED/);
      const page = await s.page(await s.signedInContext(), "resume");
      await page.goto(`${fx.url}/t/${fx.container.id}`);
      await waitForShell(page);
      const tag = marker("rs").text;
      const n = 400;
      await typeLine(page, `for i in $(seq 1 ${n}); do echo ${tag}-$i; sleep 0.01; done; echo ${tag}-end`);
      await waitForLine(page, `${tag}-40`);
      await fx.crashHub();
      await waitForLine(page, `${tag}-end`, { timeout: 30000 });
      const seen = (await termLines(page)).filter((l) => new RegExp(`^${tag}-\\d+$`).test(l)).map((l) => Number(l.slice(tag.length + 1)));
      assert.deepEqual(seen, Array.from({ length: n }, (_, k) => k + 1), "every line once, in order, across the drop");
    });
  });

  // Font size control (remembered across reloads), copy of a selection with Ctrl-Shift-C, paste.
  test("font size, copy and paste", async () => {
    await fx.run(async (s) => {
      const ctx = await s.signedInContext();
      await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: fx.url });
      const page = await s.page(ctx, "font-clipboard");
      await page.goto(`${fx.url}/t/${fx.container.id}`);
      await waitForShell(page);
      const fontSize = () => page.evaluate(() => window.__rexec.term.options.fontSize);
      const before = await fontSize();
      await page.getByTestId("font-larger").click();
      await page.getByTestId("font-larger").click();
      assert.equal(await fontSize(), before + 2);
      await page.reload();
      await waitForShell(page);
      assert.equal(await fontSize(), before + 2, "the size is remembered");
      await page.getByTestId("font-smaller").click();
      await page.getByTestId("font-smaller").click();
      assert.equal(await fontSize(), before);

      const m = marker("cp");
      await typeLine(page, m.command);
      await waitForLine(page, m.output);
      await page.evaluate(() => window.__rexec.term.selectAll());
      await page.locator("[data-testid=terminal-view] textarea").focus();
      await page.keyboard.press("Control+Shift+C");
      const copied = await waitFor(() => page.evaluate(() => navigator.clipboard.readText()).then((t) => (t.includes(m.output) ? t : null)), {
        what: "the selection in the clipboard",
      });
      assert.ok(copied.includes(m.output));

      // A paste (what Ctrl-Shift-V or the browser's menu delivers) becomes input.
      const p = marker("paste");
      await page.evaluate((text) => {
        const data = new DataTransfer();
        data.setData("text/plain", text);
        document.querySelector("[data-testid=terminal-view] textarea").dispatchEvent(
          new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }),
        );
      }, p.command);
      // bash takes a paste as text to edit (bracketed paste), not as a command: Enter runs it.
      await page.keyboard.press("Enter");
      await waitForLine(page, p.output);
    });
  });

  // Every card action through the page: share (a view link that works), stop, start, delete
  // with confirmation; and "Add machine" showing the one-line install with a fresh token.
  test("card actions: share, stop, start, delete; add machine", async () => {
    await fx.run(async (s) => {
      const t = await fx.createTerminal({ kind: "container", image: "rexec/busybox:latest", name: "e2e-actions" });
      const ctx = await s.signedInContext();
      const page = await s.page(ctx, "actions");
      await page.goto(fx.url + "/");
      const c = page.locator(card(t.id)).first();
      await c.waitFor();
      const status = () => page.locator(light(t.id)).first().getAttribute("data-status");

      await c.getByTestId("card-share").click();
      await page.getByTestId("share-mode").selectOption("view");
      await page.getByTestId("share-create").click();
      const url = await page.getByTestId("share-url").textContent();
      assert.match(url, new RegExp(`^${fx.url}/s/rxs_[A-Za-z0-9_-]+$`));
      await page.keyboard.press("Escape");
      await page.locator("dialog[open]").waitFor({ state: "detached" });
      const viewer = await s.page(await s.context(), "share link");
      await viewer.goto(url);
      await waitFor(() => viewer.evaluate(() => !!window.__rexec?.term), { what: "the shared terminal" });

      await c.getByTestId("card-stop").click();
      await waitFor(async () => (await status()) === "stopped", { timeout: 20000, what: "card stopped" });
      await c.getByTestId("card-start").click();
      await waitFor(async () => (await status()) === "running", { timeout: 30000, what: "card running again" });

      await c.getByTestId("card-delete").click();
      await page.getByTestId("confirm-ok").click();
      await page.locator(card(t.id)).waitFor({ state: "detached", timeout: 20000 });
      assert.equal((await fx.api("GET", `/api/v1/terminals/${t.id}`)).status, 404);

      await page.getByTestId("add-machine").click();
      const install = await page.getByTestId("install-command").textContent();
      assert.match(install, /install-agent\.sh/);
      assert.match(install, /'rxe_[A-Za-z0-9_-]{32}'/);
      assert.match(install, /--enroll-token-file -/);
    });
  });
});
