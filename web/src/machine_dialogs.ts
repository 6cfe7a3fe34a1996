// A machine's reservations (a week's timeline per GPU, a form to book, cancel) and its grants (who
// else may use or see it). Both ask the hub afresh when opened and after each change; the hub's
// own message is what a refusal shows.

import { Access, Agent, api, errorMessage, Grant, Reservation, User } from "./api";
import { confirmDialog } from "./dialogs";
import { h, modal } from "./dom";
import { gpuList, Live, shortTime } from "./gpus";
import { toast, toastError } from "./toast";

const DAY = 86400000;
const DAYS = 7;

// <input type="datetime-local"> speaks the browser's local time without a zone; the hub wants
// RFC 3339. new Date() reads the input's value as local time; toISOString() says it in UTC.
export function localToRfc3339(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function mayCancel(r: Reservation, me: User, access: Access | undefined): boolean {
  return r.user_id === me.id || me.admin || access === "admin";
}

function describe(r: Reservation): string {
  return `${r.user}${r.note ? ": " + r.note : ""} · ${gpuList(r.gpus)} · ${shortTime(r.from)} – ${shortTime(r.until)}`;
}

// Days across, a row per GPU, each reservation a bar over the hours it takes.
function timeline(agent: Agent, list: Reservation[], me: User): HTMLElement {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const t0 = start.getTime();
  const span = DAYS * DAY;
  const pos = (t: number) => (100 * (Math.min(Math.max(t, t0), t0 + span) - t0)) / span;
  const days = Array.from({ length: DAYS }, (_, i) => {
    const d = new Date(t0 + i * DAY + DAY / 2); // midday: a DST change never moves it to another date
    return h("span", { class: "tl-day", text: d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" }) });
  });
  const now = pos(Date.now());
  const rows = (agent.gpus ?? []).map((g) => {
    const track = h("div", { class: "tl-track" });
    const marker = h("span", { class: "tl-now", "aria-hidden": "true" });
    marker.style.left = `${now}%`;
    track.append(marker);
    for (const r of list) {
      if (!r.gpus.includes(g.index)) continue;
      const a = pos(Date.parse(r.from));
      const b = pos(Date.parse(r.until));
      if (b <= a) continue;
      const bar = h("span", {
        class: "tl-bar",
        "data-testid": "rsv-bar",
        "data-id": r.id,
        "data-mine": String(r.user_id === me.id),
        title: describe(r),
        text: r.user,
      });
      bar.style.left = `${a}%`;
      bar.style.width = `${Math.max(b - a, 0.4)}%`;
      track.append(bar);
    }
    return h("div", { class: "tl-row", "data-index": g.index }, h("span", { class: "tl-label", text: `GPU ${g.index}` }), track);
  });
  return h(
    "div",
    { class: "timeline", "data-testid": "rsv-timeline", role: "group", "aria-label": "Reservations over the next 7 days" },
    h("div", { class: "tl-row tl-head" }, h("span", { class: "tl-label" }), h("div", { class: "tl-days" }, ...days)),
    ...rows,
  );
}

export interface ReservationsView extends Live {
  reload(): void;
}

export function reservationsDialog(agent: () => Agent | undefined, me: User): ReservationsView {
  const a0 = agent()!;
  const id = encodeURIComponent(a0.id);
  const view = h("div", { class: "rsv-view" }, h("p", { class: "muted", text: "Loading reservations…" }));
  const list = h("ul", { class: "rsv-list", "data-testid": "rsv-list" });
  const canBook = a0.access !== "view";

  const picks = h("div", { class: "gpu-picks inline", role: "group", "aria-label": "GPUs" });
  const from = h("input", { type: "datetime-local", id: "rsv-from", "data-testid": "rsv-from", required: true });
  const untilInput = h("input", { type: "datetime-local", id: "rsv-until", "data-testid": "rsv-until", required: true });
  const note = h("input", { type: "text", id: "rsv-note", "data-testid": "rsv-note", maxlength: 500, placeholder: "optional: what it is for", autocomplete: "off" });
  const error = h("p", { class: "form-error", "data-testid": "rsv-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", text: "Reserve", "data-testid": "rsv-submit" });
  const start = new Date(Math.ceil(Date.now() / 3600000) * 3600000);
  from.value = toLocalInput(start);
  untilInput.value = toLocalInput(new Date(start.getTime() + 2 * 3600000));
  const form = h(
    "form",
    { class: "rsv-form", "data-testid": "rsv-form", hidden: !canBook },
    h("h3", { text: "Reserve" }),
    h("div", { class: "field" }, h("span", { class: "label", text: "GPUs" }), picks),
    h(
      "div",
      { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "rsv-from", text: "From" }), from),
      h("div", { class: "field" }, h("label", { for: "rsv-until", text: "Until" }), untilInput),
    ),
    h("div", { class: "field" }, h("label", { for: "rsv-note", text: "Note" }), note),
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal(`Reservations · ${a0.name}`, h("div", { class: "form" }, view, list, form));
  dialog.classList.add("wide");
  dialog.dataset.testid = "reservations-dialog";

  const boxes = new Map<number, HTMLInputElement>();
  const syncPicks = () => {
    for (const g of agent()?.gpus ?? [])
      if (!boxes.has(g.index)) {
        const box = h("input", { type: "checkbox", value: String(g.index), "data-testid": "rsv-gpu", "data-index": g.index });
        boxes.set(g.index, box);
        picks.append(h("label", { class: "gpu-pick" }, box, h("span", { text: `GPU ${g.index}` })));
      }
  };

  let reservations: Reservation[] = [];
  const render = () => {
    const a = agent() ?? a0;
    view.replaceChildren(timeline(a, reservations, me));
    list.replaceChildren(
      ...reservations.map((r) => {
        const cancel = mayCancel(r, me, a.access)
          ? h("button", { type: "button", class: "danger", text: "Cancel", "data-testid": "rsv-cancel", onclick: () => cancelOne(r) })
          : null;
        return h(
          "li",
          { "data-testid": "rsv-row", "data-id": r.id },
          h("span", { class: "rsv-what" }, h("strong", { text: gpuList(r.gpus) }), ` ${shortTime(r.from)} – ${shortTime(r.until)} · ${r.user}`, r.note ? h("span", { class: "muted", text: ` · ${r.note}` }) : null),
          cancel,
        );
      }),
    );
    if (!reservations.length) list.append(h("li", { class: "muted", text: "No reservations ahead." }));
  };

  let asking = 0;
  const load = async () => {
    const mine = ++asking;
    try {
      const r = await api<{ reservations: Reservation[] }>("GET", `/agents/${id}/reservations`);
      if (mine !== asking) return;
      reservations = r.reservations ?? [];
      render();
    } catch (err) {
      if (mine !== asking) return;
      view.replaceChildren(h("p", { class: "form-error", text: errorMessage(err) }));
      toastError(err);
    }
  };

  const cancelOne = async (r: Reservation) => {
    try {
      await api("DELETE", `/agents/${id}/reservations/${encodeURIComponent(r.id)}`);
      toast(`Reservation of ${gpuList(r.gpus)} cancelled`);
    } catch (err) {
      toastError(err);
    }
    void load();
  };

  const fail = (text: string) => {
    error.textContent = text;
    error.hidden = false;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const gpus = [...boxes.entries()].filter(([, b]) => b.checked).map(([i]) => i);
    const f = localToRfc3339(from.value);
    const u = localToRfc3339(untilInput.value);
    if (!gpus.length) return fail("Tick at least one GPU.");
    if (!f || !u) return fail("Give both times.");
    if (Date.parse(f) >= Date.parse(u)) return fail("The end comes after the start.");
    const body: Record<string, unknown> = { gpus, from: f, until: u };
    if (note.value.trim()) body.note = note.value.trim();
    submit.disabled = true;
    try {
      const r = await api<Reservation>("POST", `/agents/${id}/reservations`, body);
      toast(`Reserved ${gpuList(r.gpus)} from ${shortTime(r.from)} to ${shortTime(r.until)}`);
      note.value = "";
      for (const b of boxes.values()) b.checked = false;
    } catch (err) {
      // 400 (bad times, too long, unknown GPU) and 409 reservation_conflict: the hub's words.
      fail(errorMessage(err));
      toastError(err);
    } finally {
      submit.disabled = false;
    }
    void load();
  });

  syncPicks();
  void load();
  return {
    // The machine changed (a GPU came or went): the pickers follow.
    update() {
      if (dialog.open) syncPicks();
    },
    // Someone booked or cancelled: ask again.
    reload() {
      if (dialog.open) void load();
    },
  };
}

export function grantsDialog(agent: Agent): void {
  const id = encodeURIComponent(agent.id);
  const list = h("ul", { class: "grant-list", "data-testid": "grant-list" }, h("li", { class: "muted", text: "Loading…" }));
  const user = h("input", { type: "text", id: "grant-user", "data-testid": "grant-user", required: true, autocomplete: "off", placeholder: "a Rexec user name" });
  const role = h(
    "select",
    { id: "grant-role", "data-testid": "grant-role" },
    h("option", { value: "use", text: "Use: shells, commands, GPU leases and reservations" }),
    h("option", { value: "view", text: "View: see the machine, its GPUs and reservations" }),
  );
  const unix = h("input", { type: "text", id: "grant-unix", "data-testid": "grant-unix", autocomplete: "off", placeholder: "optional: the local account their shells run as" });
  const error = h("p", { class: "form-error", "data-testid": "grant-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", text: "Grant", "data-testid": "grant-submit" });
  const form = h(
    "form",
    { class: "grant-form" },
    h("h3", { text: "Give access" }),
    h("div", { class: "field" }, h("label", { for: "grant-user", text: "User" }), user),
    h("div", { class: "field" }, h("label", { for: "grant-role", text: "Role" }), role),
    h("div", { class: "field" }, h("label", { for: "grant-unix", text: "Unix account" }), unix),
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal(`Access to ${agent.name}`, h("div", { class: "form" }, list, form));
  dialog.dataset.testid = "grants-dialog";

  const load = async () => {
    try {
      const r = await api<{ grants: Grant[] }>("GET", `/agents/${id}/grants`);
      const grants = r.grants ?? [];
      list.replaceChildren(
        ...grants.map((g) =>
          h(
            "li",
            { "data-testid": "grant-row", "data-user": g.user },
            h("span", { class: "grant-who" }, h("strong", { text: g.user }), h("span", { class: "badge", text: g.role }), g.unix_user ? h("span", { class: "muted", text: ` as ${g.unix_user}` }) : null),
            h("button", { type: "button", class: "danger", text: "Revoke", "data-testid": "grant-revoke", onclick: () => revoke(g) }),
          ),
        ),
      );
      if (!grants.length) list.append(h("li", { class: "muted", text: "Only you (and admins) can use this machine." }));
    } catch (err) {
      list.replaceChildren(h("li", { class: "form-error", text: errorMessage(err) }));
      toastError(err);
    }
  };

  const revoke = async (g: Grant) => {
    if (!(await confirmDialog(`Revoke ${g.user}'s access?`, `Their terminals on ${agent.name} end and their GPU leases are freed.`, "Revoke"))) return;
    try {
      await api("DELETE", `/agents/${id}/grants/${encodeURIComponent(g.user)}`);
      toast(`${g.user} no longer has access to ${agent.name}`);
    } catch (err) {
      toastError(err);
    }
    void load();
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const body: Record<string, string> = { user: user.value.trim(), role: role.value };
    if (!body.user) return;
    if (unix.value.trim()) body.unix_user = unix.value.trim();
    submit.disabled = true;
    try {
      const g = await api<Grant>("POST", `/agents/${id}/grants`, body);
      toast(`${g.user} may now ${g.role === "use" ? "use" : "view"} ${agent.name}`);
      user.value = unix.value = "";
    } catch (err) {
      error.textContent = errorMessage(err);
      error.hidden = false;
      toastError(err);
    } finally {
      submit.disabled = false;
    }
    void load();
  });

  void load();
  user.focus();
}
