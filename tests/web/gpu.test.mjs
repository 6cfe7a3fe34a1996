// GPU box sharing in the dashboard (issue 15): the agent reports two GPUs through a fake
// nvidia-smi; a second user, bob, has a "use" grant on the machine. The page's chips say who holds
// each GPU, how busy it has been and how full it is; "New shell" leases GPUs; the reservations view
// books them ahead; the machine's Access dialog grants and revokes. The hub is the judge of all of
// it: every assertion about state is made against its API, not only against the page.
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setup, skipReason, sourceDir, waitFor } from "./fixture.mjs";

const MiB = 1024 * 1024;

// tests/gpu/fake-nvidia-smi when the tree has it; the same few lines otherwise (docs in the spec:
// it answers the two queries the agent makes from the state files next to it, anything else exit 6).
const FAKE = `#!/bin/sh
state="$(dirname "$0")/state"
for a in "$@"; do
  case "$a" in
    --query-gpu=*) exec cat "$state/gpus.csv" ;;
    --query-compute-apps=*) exec cat "$state/apps.csv" ;;
  esac
done
exit 6
`;

function fakeNvidiaSmi() {
  const dir = mkdtempSync(path.join(tmpdir(), "rexec-web-gpu-"));
  const smi = path.join(dir, "fake-nvidia-smi");
  const shipped = path.join(sourceDir, "tests", "gpu", "fake-nvidia-smi");
  if (existsSync(shipped)) copyFileSync(shipped, smi);
  else writeFileSync(smi, FAKE);
  chmodSync(smi, 0o755);
  mkdirSync(path.join(dir, "state"));
  // GPU 0: 37% busy, 10 GiB of 40 used. GPU 1: idle, but a process of this test's (root: no
  // Rexec user) sits on it, which is a violation once someone else holds GPU 1.
  writeFileSync(
    path.join(dir, "state", "gpus.csv"),
    "0, GPU-aaaa-0000, NVIDIA A100-SXM4-40GB, 40960, 37, 10240\n1, GPU-bbbb-0001, NVIDIA A100-SXM4-40GB, 40960, 0, 0\n",
  );
  writeFileSync(path.join(dir, "state", "apps.csv"), `GPU-bbbb-0001, ${process.pid}, python3, 512\n`);
  return { dir, smi };
}

const machine = (id) => `[data-testid=machine][data-agent-id="${id}"]`;
const chip = (id, i) => `${machine(id)} [data-testid=gpu-chip][data-index="${i}"]`;

// datetime-local text for a local time `days` from today at `hour`:00.
function localInput(days, hour) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  d.setHours(hour, 0, 0, 0);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(hour)}:00`;
}

describe("gpu sharing", { skip: skipReason({ docker: false }) }, () => {
  let fx, fake, bob, admin;
  before(async () => {
    fake = fakeNvidiaSmi();
    fx = await setup({ docker: false, agentArgs: ["--nvidia-smi", fake.smi] });
    admin = (await fx.api("GET", "/api/v1/sessions/current")).body.user;
    const made = await fx.api("POST", "/api/v1/users", { name: "bob" });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    bob = made.body;
    const grant = await fx.api("POST", `/api/v1/agents/${fx.agentId}/grants`, { user: "bob", role: "use" });
    assert.equal(grant.status, 201, JSON.stringify(grant.body));
    // Both GPUs in the machine's view before any test looks.
    await waitFor(async () => (await fx.api("GET", `/api/v1/agents/${fx.agentId}`)).body?.gpus?.length === 2, {
      timeout: 20000,
      what: "e2e-box reporting two GPUs",
    });
  });
  after(async () => {
    await fx?.close();
    if (fake) rmSync(fake.dir, { recursive: true, force: true });
  });

  test("chips: free, a utilisation sparkline, a memory bar", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext(), "dashboard");
      await page.goto(fx.url + "/");
      await page.locator(chip(fx.agentId, 1)).waitFor();
      assert.equal(await page.locator(`${machine(fx.agentId)} [data-testid=gpu-chip]`).count(), 2);
      assert.equal(await page.locator(chip(fx.agentId, 0)).getAttribute("data-held"), "false");
      // A sample every 5 s: GPU 0's sparkline plots its 37%.
      await waitFor(
        async () => (await page.locator(`${chip(fx.agentId, 0)} [data-testid=gpu-sparkline]`).getAttribute("data-values"))?.split(",").includes("37.0"),
        { timeout: 20000, what: "GPU 0's sparkline plotting 37%" },
      );
      const mem = page.locator(`${chip(fx.agentId, 0)} [data-testid=gpu-mem]`);
      await waitFor(async () => (await mem.getAttribute("aria-valuenow")) === "25", { timeout: 20000, what: "GPU 0's memory bar at 25%" });
      assert.equal(Number(await mem.getAttribute("data-used")), 10240 * MiB);
      assert.equal(Number(await mem.getAttribute("data-total")), 40960 * MiB);
      const width = await mem.evaluate((el) => el.firstElementChild.getBoundingClientRect().width / el.getBoundingClientRect().width);
      assert.ok(Math.abs(width - 0.25) < 0.03, `the bar is a quarter full, got ${width}`);
    });
  });

  test("New shell leases a GPU; chips name the holder, bob's lease too; a busy GPU's 409 is shown", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext(), "dashboard");
      await page.goto(fx.url + "/");
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-shell]`).click();
      const pick = (i) => page.locator(`dialog[open] [data-testid=gpu-pick][data-index="${i}"]`);
      await pick(1).waitFor();
      assert.equal(await pick(0).isDisabled(), false);
      assert.equal(await pick(1).isDisabled(), false);
      await pick(0).check();
      await page.getByTestId("gpu-shell-submit").click();
      await page.waitForURL((u) => u.pathname.startsWith("/t/"));
      const tid = decodeURIComponent(new URL(page.url()).pathname.slice(3));
      const term = (await fx.api("GET", `/api/v1/terminals/${tid}`)).body;
      assert.deepEqual(term.gpus, [0], `the terminal made by the dialog leased GPU 0: ${JSON.stringify(term)}`);

      // bob leases GPU 1 through the API with his own token.
      const leased = await fx.apiAs(bob.token, "POST", "/api/v1/terminals", { kind: "agent", agent: fx.agentId, gpus: [1] });
      assert.equal(leased.status, 201, JSON.stringify(leased.body));

      await page.goto(fx.url + "/");
      for (const [i, who] of [[0, admin.name], [1, "bob"]])
        await waitFor(async () => (await page.locator(chip(fx.agentId, i)).getAttribute("data-holder")) === who, {
          what: `GPU ${i}'s chip naming ${who}`,
        });
      assert.equal(await page.locator(chip(fx.agentId, 1)).getAttribute("data-held"), "true");
      assert.match(await page.locator(`${chip(fx.agentId, 1)} [data-testid=gpu-holder]`).textContent(), /held by bob/);
      // The terminal's own card marks the GPU it leased.
      await page.locator(`[data-terminal-id="${tid}"] [data-testid=gpu-chip][data-index="0"][data-leased="true"]`).waitFor();

      // The picker now: both busy, each saying by whom.
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-shell]`).click();
      await pick(1).waitFor();
      assert.equal(await pick(0).isDisabled(), true);
      assert.equal(await pick(1).isDisabled(), true);
      const status = (i) => page.locator(`dialog[open] [data-testid=gpu-pick][data-index="${i}"] ~ [data-testid=gpu-pick-status]`).textContent();
      assert.match(await status(0), /held by you/);
      assert.match(await status(1), /held by bob/);

      // The hub refuses a busy GPU even when the page is talked round: its 409 is the toast.
      s.allowErrors(/error toast: "GPU 1 is held by bob/);
      s.allowErrors(/Failed to load resource: the server responded with a status of 409/);
      await pick(1).evaluate((el) => {
        el.disabled = false;
        el.checked = true;
      });
      await page.getByTestId("gpu-shell-submit").click();
      const toast = page.locator("[data-testid=toast][data-tone=error]");
      await toast.waitFor();
      assert.match(await toast.textContent(), /GPU 1 is held by bob/);
      await page.keyboard.press("Escape");

      // Giving the GPU back from the card frees it.
      await page.locator(`[data-terminal-id="${tid}"] [data-testid=card-release-gpus]`).click();
      await waitFor(async () => (await page.locator(chip(fx.agentId, 0)).getAttribute("data-held")) === "false", { what: "GPU 0 free again" });
      assert.deepEqual((await fx.api("GET", `/api/v1/terminals/${tid}`)).body.gpus, []);
    });
  });

  test("a process that is not the holder's on a held GPU shows as a violation", async () => {
    await fx.run(async (s) => {
      const page = await s.page(await s.signedInContext(), "dashboard");
      await page.goto(fx.url + "/");
      // GPU 1 is bob's (previous test); this test's own process (root, no Rexec user) is on it.
      await waitFor(async () => (await page.locator(chip(fx.agentId, 1)).getAttribute("data-violation")) === "true", {
        timeout: 20000,
        what: "GPU 1's chip showing a violation",
      });
      assert.match(await page.locator(chip(fx.agentId, 1)).getAttribute("title"), /Warning: .*not bob's/);
      assert.match(await page.locator(chip(fx.agentId, 1)).getAttribute("title"), new RegExp(`pid ${process.pid} python3`));
      const border = await page.locator(chip(fx.agentId, 1)).evaluate((el) => getComputedStyle(el).borderTopColor);
      const [r, g] = border.match(/\d+/g).map(Number);
      assert.ok(r > g + 60, `a violation's border is red, got ${border}`);
      assert.equal(await page.locator(chip(fx.agentId, 0)).getAttribute("data-violation"), null);
    });
  });

  test("reservations: booked in the page, listed by the hub, a conflict shown, cancelled", async () => {
    await fx.run(async (s) => {
      // A browser half an hour off UTC all year: the times typed are local, the hub's are UTC.
      const page = await s.page(await s.signedInContext({ timezoneId: "Asia/Kolkata" }), "dashboard");
      await page.goto(fx.url + "/");
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-reservations]`).click();
      const dialog = page.locator("dialog[open][data-testid=reservations-dialog]");
      await dialog.locator("[data-testid=rsv-timeline]").waitFor();

      const from = localInput(1, 10);
      const until = localInput(1, 12);
      await dialog.locator("[data-testid=rsv-gpu][data-index='1']").check();
      await dialog.getByTestId("rsv-from").fill(from);
      await dialog.getByTestId("rsv-until").fill(until);
      await dialog.getByTestId("rsv-note").fill("training run");
      await dialog.getByTestId("rsv-submit").click();
      await dialog.locator("[data-testid=rsv-bar]").first().waitFor();

      // What the hub holds: RFC 3339 in UTC for the local times typed.
      const want = await page.evaluate(([f, u]) => [f, u].map((v) => new Date(v).toISOString().replace(/\.000Z$/, "Z")), [from, until]);
      const listed = (await fx.api("GET", `/api/v1/agents/${fx.agentId}/reservations`)).body.reservations;
      const mine = listed.find((r) => r.note === "training run");
      assert.ok(mine, `the reservation is listed by the hub: ${JSON.stringify(listed)}`);
      assert.deepEqual(mine.gpus, [1]);
      assert.equal(mine.user, admin.name);
      assert.equal(Date.parse(mine.from), Date.parse(want[0]), `from ${mine.from} vs ${want[0]}`);
      assert.equal(Date.parse(mine.until), Date.parse(want[1]), `until ${mine.until} vs ${want[1]}`);
      assert.match(want[0], /T04:30:00Z$/, "10:00 in Kolkata is 04:30 UTC");
      const bar = dialog.locator(`[data-testid=rsv-bar][data-id="${mine.id}"]`);
      assert.match(await bar.getAttribute("title"), /training run/);
      assert.equal(await bar.locator("xpath=ancestor::*[@data-index][1]").getAttribute("data-index"), "1");

      // bob's overlapping booking is refused by the hub; one on GPU 0 is fine and shows up here.
      const clash = await fx.apiAs(bob.token, "POST", `/api/v1/agents/${fx.agentId}/reservations`, { gpus: [1], from: want[0], until: want[1] });
      assert.equal(clash.status, 409, JSON.stringify(clash.body));
      assert.equal(clash.body.code, "reservation_conflict");
      const bobs = await fx.apiAs(bob.token, "POST", `/api/v1/agents/${fx.agentId}/reservations`, { gpus: [0], from: want[0], until: want[1], note: "bob's" });
      assert.equal(bobs.status, 201, JSON.stringify(bobs.body));

      // The same slot again from the page: the hub's 409 message in the dialog.
      s.allowErrors(/error toast: /);
      s.allowErrors(/Failed to load resource: the server responded with a status of 409/);
      await dialog.locator("[data-testid=rsv-gpu][data-index='1']").check();
      await dialog.getByTestId("rsv-submit").click();
      const error = dialog.getByTestId("rsv-error");
      await error.waitFor();
      assert.equal(await error.textContent(), clash.body.error);
      // Reopened, bob's shows too (the admin may cancel anyone's).
      await page.keyboard.press("Escape");
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-reservations]`).click();
      await dialog.locator(`[data-testid=rsv-bar][data-id="${bobs.body.id}"]`).waitFor();

      await dialog.locator(`[data-testid=rsv-row][data-id="${mine.id}"] [data-testid=rsv-cancel]`).click();
      await dialog.locator(`[data-testid=rsv-row][data-id="${mine.id}"]`).waitFor({ state: "detached" });
      const left = (await fx.api("GET", `/api/v1/agents/${fx.agentId}/reservations`)).body.reservations.map((r) => r.id);
      assert.deepEqual(left, [bobs.body.id]);
    });
  });

  test("bob's view of the shared machine: no Access button; his own reservation cancellable, nobody else's", async () => {
    await fx.run(async (s) => {
      const admins = await fx.api("POST", `/api/v1/agents/${fx.agentId}/reservations`, { gpus: [1], from: new Date(Date.now() + 3 * 86400000).toISOString().replace(/\.\d{3}Z$/, "Z"), until: new Date(Date.now() + 3 * 86400000 + 3600000).toISOString().replace(/\.\d{3}Z$/, "Z") });
      assert.equal(admins.status, 201, JSON.stringify(admins.body));
      const page = await s.page(await s.signedInContext(undefined, bob.token), "bob's dashboard");
      await page.goto(fx.url + "/");
      await page.locator(`${machine(fx.agentId)} [data-testid=gpu-chip]`).first().waitFor();
      // Bob's access comes from a REST call after the feed shows the machine: wait for it, not for the chips.
      await page.locator(`${machine(fx.agentId)}[data-access]`).waitFor();
      assert.equal(await page.locator(machine(fx.agentId)).getAttribute("data-access"), "use");
      assert.equal(await page.locator(`${machine(fx.agentId)} [data-testid=machine-access]`).isHidden(), true);
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-reservations]`).click();
      const dialog = page.locator("dialog[open][data-testid=reservations-dialog]");
      await dialog.locator(`[data-testid=rsv-row][data-id="${admins.body.id}"]`).waitFor();
      const rows = await dialog.locator("[data-testid=rsv-row]").evaluateAll((els) =>
        els.map((el) => [el.dataset.id, !!el.querySelector("[data-testid=rsv-cancel]")]),
      );
      const own = (await fx.apiAs(bob.token, "GET", `/api/v1/agents/${fx.agentId}/reservations?user=bob`)).body.reservations.map((r) => r.id);
      for (const [id, cancellable] of rows) assert.equal(cancellable, own.includes(id), `reservation ${id}: a Cancel button only on bob's own`);
    });
  });

  test("grants from the machine card: listed, added, revoked", async () => {
    await fx.run(async (s) => {
      const carol = await fx.api("POST", "/api/v1/users", { name: "carol" });
      assert.equal(carol.status, 201, JSON.stringify(carol.body));
      const page = await s.page(await s.signedInContext(), "dashboard");
      await page.goto(fx.url + "/");
      await page.locator(`${machine(fx.agentId)} [data-testid=machine-access]`).click();
      const dialog = page.locator("dialog[open][data-testid=grants-dialog]");
      await dialog.locator("[data-testid=grant-row][data-user=bob]").waitFor();

      await dialog.getByTestId("grant-user").fill("carol");
      await dialog.getByTestId("grant-role").selectOption("view");
      await dialog.getByTestId("grant-submit").click();
      await dialog.locator("[data-testid=grant-row][data-user=carol]").waitFor();
      let grants = (await fx.api("GET", `/api/v1/agents/${fx.agentId}/grants`)).body.grants;
      assert.deepEqual(grants.map((g) => [g.user, g.role]).sort(), [["bob", "use"], ["carol", "view"]]);

      // A refusal (a grant to root) is the hub's message under the form.
      s.allowErrors(/error toast: /);
      s.allowErrors(/Failed to load resource: the server responded with a status of 400/);
      await dialog.getByTestId("grant-user").fill("carol");
      await dialog.getByTestId("grant-unix").fill("root");
      await dialog.getByTestId("grant-submit").click();
      await dialog.getByTestId("grant-error").waitFor();
      assert.match(await dialog.getByTestId("grant-error").textContent(), /root/);

      await dialog.locator("[data-testid=grant-row][data-user=carol] [data-testid=grant-revoke]").click();
      await page.getByTestId("confirm-ok").click();
      await dialog.locator("[data-testid=grant-row][data-user=carol]").waitFor({ state: "detached" });
      grants = (await fx.api("GET", `/api/v1/agents/${fx.agentId}/grants`)).body.grants;
      assert.deepEqual(grants.map((g) => g.user), ["bob"]);
    });
  });
});
