// GPUs on the cards (who holds each, how busy it has been, how full its memory is) and the picker
// "New shell" shows on a machine that has GPUs. The hub decides who may have what: the picker
// only greys out what it would refuse anyway, and shows the hub's message when it refuses.

import { Agent, api, Gpu, holderName, Reservation, Sample, Terminal, User } from "./api";
import { bytes, h, modal } from "./dom";
import { sparkline, Sparkline } from "./sparkline";
import { toastError } from "./toast";

// "Tue 14:30" for a time this week, with the date when further off.
export function shortTime(t: string | number | Date): string {
  const d = new Date(typeof t === "number" ? t * 1000 : t);
  const days = Math.abs(d.getTime() - Date.now()) / 86400000;
  return d.toLocaleString(undefined, days < 6 ? { weekday: "short", hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function gpuList(gpus: number[]): string {
  return (gpus.length === 1 ? "GPU " : "GPUs ") + gpus.join(", ");
}

const reservedText = (r: Reservation, me?: User) => `reserved ${me && r.user_id === me.id ? "for you" : "by " + r.user} until ${shortTime(r.until)}`;

interface Chip {
  el: HTMLElement;
  update(g: Gpu, samples: Sample[], leased: boolean): void;
}

function gpuChip(me?: User): Chip {
  const title = h("strong", {});
  const model = h("span", { class: "gpu-model" });
  const holder = h("span", { class: "holder", "data-testid": "gpu-holder" });
  const util: Sparkline = sparkline("gpu-sparkline");
  const fill = h("span", { class: "gpu-mem-fill" });
  const mem = h("span", { class: "gpu-mem", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "data-testid": "gpu-mem" }, fill);
  const facts = h("span", { class: "gpu-facts" });
  const reserved = h("span", { class: "gpu-reserved", "data-testid": "gpu-reserved" });
  const el = h("div", { class: "gpu", "data-testid": "gpu-chip" }, h("div", { class: "gpu-head" }, title, model, holder), util.el, mem, facts, reserved);
  return {
    el,
    update(g, samples, leased) {
      const series = samples.map((s) => s.gpus?.find((x) => x.index === g.index)).filter((x) => x !== undefined);
      const last = series.at(-1);
      const pct = g.utilization ?? last?.utilization ?? null;
      const used = g.memory_used ?? last?.memory_used ?? null;
      const total = g.memory_total || last?.memory_total || g.mem || 0;
      const who = holderName(g);
      el.dataset.index = String(g.index);
      el.dataset.held = String(!!who);
      if (who) el.dataset.holder = who;
      else delete el.dataset.holder;
      el.dataset.leased = String(leased);
      title.textContent = `GPU ${g.index}`;
      model.textContent = g.name || g.model || "";
      holder.textContent = who ? (leased ? "this terminal" : `held by ${who}`) : "free";
      util.set(series.map((x) => x.utilization), 100, `GPU ${g.index} utilisation ${pct === null ? "unknown" : Math.round(pct) + "%"}`);
      const memPct = used !== null && total ? Math.min(100, (100 * used) / total) : 0;
      fill.style.width = `${memPct.toFixed(1)}%`;
      mem.setAttribute("aria-valuenow", memPct.toFixed(0));
      mem.setAttribute("aria-label", `GPU ${g.index} memory ${used === null ? "unknown" : `${bytes(used)} of ${bytes(total)}`}`);
      mem.dataset.used = String(used ?? "");
      mem.dataset.total = String(total);
      const idle = who && typeof g.holder === "object" && g.idle_since ? `idle since ${shortTime(g.idle_since)}` : "";
      facts.textContent = [pct === null ? "" : `${Math.round(pct)}%`, used === null ? bytes(total) : `${bytes(used)} / ${bytes(total)}`, idle].filter(Boolean).join(" · ");
      const r = g.reserved_now;
      reserved.textContent = r ? reservedText(r, me) : "";
      reserved.hidden = !r;
      if (r) {
        el.dataset.reserved = "true";
        el.dataset.reservedBy = r.user;
      } else {
        delete el.dataset.reserved;
        delete el.dataset.reservedBy;
      }
      // Someone's process on a GPU they do not hold: the chip says so in colour and in words.
      const lines = [`GPU ${g.index}${g.name || g.model ? " · " + (g.name || g.model) : ""}${g.uuid ? " · " + g.uuid : ""}`];
      if (typeof g.holder === "object" && g.holder) lines.push(`Held by ${g.holder.user} since ${shortTime(g.holder.since)} (terminal ${g.holder.terminal})`);
      if (g.violation) {
        el.dataset.violation = "true";
        const bad = (g.processes ?? []).filter((p) => p.violation);
        lines.push(
          who ? `Warning: a process that is not ${who}'s is using this GPU` : "Warning: a process is using this GPU without a lease",
          ...bad.map((p) => `  pid ${p.pid} ${p.name} (${p.user ?? p.account}, ${bytes(p.memory_used)})`),
        );
      } else delete el.dataset.violation;
      el.title = lines.join("\n");
    },
  };
}

export interface GpuStrip {
  el: HTMLElement;
  update(agent: Agent | undefined, samples: Sample[], leased?: number[]): void;
}

// One chip per GPU, kept (not rebuilt) across updates, in index order.
export function gpuStrip(me?: User): GpuStrip {
  const el = h("div", { class: "gpus" });
  const chips = new Map<number, Chip>();
  return {
    el,
    update(agent, samples, leased = []) {
      const gpus = agent?.gpus ?? [];
      for (const [i, c] of chips)
        if (!gpus.some((g) => g.index === i)) {
          c.el.remove();
          chips.delete(i);
        }
      gpus.forEach((g, pos) => {
        let c = chips.get(g.index);
        if (!c) chips.set(g.index, (c = gpuChip(me)));
        c.update(g, samples, leased.includes(g.index));
        if (el.children[pos] !== c.el) el.insertBefore(c.el, el.children[pos] ?? null);
      });
    },
  };
}

// Why a GPU cannot be picked now, or null when it can.
function unavailable(g: Gpu, me: User): string | null {
  const who = holderName(g);
  if (who) return typeof g.holder === "object" && g.holder?.user_id === me.id ? "held by you in another terminal" : `held by ${who}`;
  const r = g.reserved_now;
  if (r && r.user_id !== me.id) return reservedText(r);
  return null;
}

export interface Live {
  update(): void;
}

// "New shell" on a machine with GPUs: pick none, some or all of the free ones.
export function gpuShellDialog(agent: () => Agent | undefined, me: User, opened: (t: Terminal) => void): Live {
  const a0 = agent()!;
  const rows = h("div", { class: "gpu-picks", role: "group", "aria-label": "GPUs" });
  const policy = h("p", { class: "hint" });
  const submit = h("button", { type: "submit", class: "primary", text: "Open shell", "data-testid": "gpu-shell-submit" });
  const form = h(
    "form",
    { class: "form", "data-testid": "gpu-shell-form" },
    h("p", { class: "muted", text: "The GPUs you tick are yours until the shell ends (or you give them back): nobody else can lease them meanwhile." }),
    rows,
    policy,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal(`New shell on ${a0.name}`, form);
  const boxes = new Map<number, { box: HTMLInputElement; status: HTMLElement; label: HTMLElement }>();

  const update = () => {
    const a = agent();
    if (!a) return;
    for (const g of a.gpus ?? []) {
      let row = boxes.get(g.index);
      if (!row) {
        const box = h("input", { type: "checkbox", value: String(g.index), "data-testid": "gpu-pick", "data-index": g.index });
        const status = h("span", { class: "gpu-pick-status", "data-testid": "gpu-pick-status" });
        const label = h("label", { class: "gpu-pick" }, box, h("span", { text: `GPU ${g.index}` }), h("span", { class: "muted", text: [g.name || g.model, bytes(g.memory_total || g.mem || 0)].filter(Boolean).join(" · ") }), status);
        rows.append(label);
        boxes.set(g.index, (row = { box, status, label }));
      }
      const why = unavailable(g, me);
      row.box.disabled = !!why;
      if (why) row.box.checked = false;
      row.label.dataset.free = String(!why);
      row.status.textContent = why ?? (g.reserved_now ? reservedText(g.reserved_now, me) : "free");
    }
    policy.textContent =
      a.gpu_policy === "lease-required"
        ? "This machine lends GPUs by lease only: a shell without one sees no GPU."
        : "Tick none for a shell without a lease.";
  };
  update();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const gpus = [...boxes.entries()].filter(([, r]) => r.box.checked && !r.box.disabled).map(([i]) => i);
    const body: Record<string, unknown> = { kind: "agent", agent: a0.id };
    if (gpus.length) body.gpus = gpus;
    submit.disabled = true;
    try {
      const t = await api<Terminal>("POST", "/terminals", body);
      dialog.close();
      opened(t);
    } catch (err) {
      // 409 gpu_busy / gpu_reserved: the hub's words say who has it; the rows catch up by events.
      toastError(err);
      submit.disabled = false;
    }
  });
  ([...boxes.values()].find((r) => !r.box.disabled)?.box ?? submit).focus();
  return { update: () => dialog.open && update() };
}
