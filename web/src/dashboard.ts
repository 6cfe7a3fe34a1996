// The dashboard: a card per terminal and a chip per machine, kept live by one events socket.
// Cards are updated in place (never rebuilt) so focus and hover survive the 5-second stats.

import { Access, Agent, api, Sample, Terminal, User, wsBase } from "./api";
import { addMachineDialog, confirmDialog, shareDialog } from "./dialogs";
import { ago, bytes, h } from "./dom";
import { gpuList, gpuShellDialog, gpuStrip, Live } from "./gpus";
import { grantsDialog, reservationsDialog, ReservationsView } from "./machine_dialogs";
import type { App, Page } from "./main";
import { SLOTS, sparkline } from "./sparkline";
import { toast, toastError } from "./toast";
import { Backoff } from "./viewer";

const STATUS_LABEL: Record<string, string> = {
  starting: "Starting",
  running: "Running",
  offline: "Offline",
  stopped: "Stopped",
  lost: "Lost",
  exited: "Exited",
};

interface Card {
  el: HTMLElement;
  focus(): void;
  update(): void;
  gpuEvent?(msg: GpuEvent): void;
}

// {"type":"gpu",...} on the events socket (the agent views change too; this says why).
interface GpuEvent {
  event: string;
  agent: string;
  gpus?: number[];
  user?: string;
}

export function dashboardPage(root: HTMLElement, app: App): Page {
  const terminals = new Map<string, Terminal>();
  const agents = new Map<string, Agent>();
  const stats = new Map<string, Sample[]>();
  const cards = new Map<string, Card>();
  const chips = new Map<string, Card>();
  const latest = (agent: string): Sample | undefined => stats.get(agent)?.at(-1);

  const live = h("span", { class: "live", "data-state": "connecting", text: "Connecting…" });
  const machineList = h("ul", { class: "machine-list", "data-testid": "machines" });
  const noMachines = h(
    "p",
    { class: "muted", hidden: true },
    "No machines yet. ",
    h("button", { type: "button", class: "link", text: "Add machine", onclick: addMachineDialog }),
    " gives a one-line install for a server or a GPU box.",
  );
  const grid = h("div", { class: "grid", "data-testid": "terminal-grid" });
  const loading = h("p", { class: "muted loading", text: "Connecting to the hub…" });
  const empty = h(
    "div",
    { class: "empty", "data-testid": "empty-state", hidden: true },
    h("h2", { text: "No terminals yet" }),
    h("p", {}, "Start a shell in a fresh, locked-down ", h("strong", { text: "container" }), " from an image on the hub, or ", h("strong", { text: "add a machine" }), ": run the one-line install on a server or GPU box and its card lights up here within seconds."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", text: "New terminal", onclick: app.newTerminal }),
      h("button", { type: "button", text: "Add machine", onclick: addMachineDialog }),
    ),
  );

  root.append(
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Rexec"),
      live,
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "primary", text: "New terminal", "data-testid": "create-terminal", onclick: app.newTerminal }),
      h("button", { type: "button", text: "Add machine", "data-testid": "add-machine", onclick: addMachineDialog }),
      h("a", { class: "button ghost", href: "/recordings", "data-testid": "recordings-link", text: "Recordings" }),
      h("button", { type: "button", class: "ghost kbd", title: "Command palette (Ctrl-K)", "aria-label": "Command palette", text: "Ctrl K", onclick: app.palette }),
      h("span", { class: "user", text: app.session.user.name }),
      h("button", { type: "button", class: "ghost", text: "Sign out", "data-testid": "sign-out", onclick: app.signOut }),
    ),
    h(
      "main",
      { class: "dash" },
      h("section", { class: "machines", "aria-labelledby": "machines-h" }, h("h2", { id: "machines-h", text: "Machines" }), machineList, noMachines),
      h("section", { "aria-labelledby": "terminals-h" }, h("h2", { id: "terminals-h", text: "Terminals" }), loading, empty, grid),
    ),
  );
  document.title = "Dashboard · Rexec";

  const ctx: CardContext = { app, agents, stats, latest, me: app.session.user! };

  const showEmpty = () => {
    empty.hidden = terminals.size > 0;
  };

  const upsertTerminal = (t: Terminal) => {
    terminals.set(t.id, t);
    let card = cards.get(t.id);
    if (!card) {
      card = terminalCard(t.id, terminals, ctx);
      cards.set(t.id, card);
      // Newest first: a card just created shows up at the top.
      const after = [...terminals.values()].filter((o) => o.id !== t.id && newer(o, t)).length;
      grid.insertBefore(card.el, grid.children[after] ?? null);
    }
    card.update();
    showEmpty();
  };

  const removeTerminal = (id: string) => {
    terminals.delete(id);
    cards.get(id)?.el.remove();
    cards.delete(id);
    showEmpty();
  };

  const renderMachines = () => {
    for (const [id, chip] of chips)
      if (!agents.has(id)) {
        chip.el.remove();
        chips.delete(id);
      }
    const sorted = [...agents.values()].sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
    const order = sorted.map((a) => {
      let chip = chips.get(a.id);
      if (!chip) chips.set(a.id, (chip = machineChip(a.id, ctx)));
      chip.update();
      return chip.el;
    });
    // Moving an element takes focus from it: reorder only when the order changed.
    if (order.some((el, i) => machineList.children[i] !== el)) machineList.append(...order);
    noMachines.hidden = agents.size > 0;
  };

  // The events feed sends one view of a machine to everyone who sees it, so what this user may do
  // with it (owner, admin, use, view) comes from GET /agents: asked after each snapshot and when
  // a machine not seen before appears, and kept on the machine as `access`.
  const access = new Map<string, Access>();
  let asking = false;
  const withAccess = (a: Agent): Agent => (a.access || !access.has(a.id) ? a : { ...a, access: access.get(a.id) });
  const loadAccess = () => {
    if (asking) return;
    asking = true;
    api<{ agents: Agent[] }>("GET", "/agents")
      .then(
        (r) => {
          for (const a of r.agents ?? []) if (a.access) access.set(a.id, a.access);
          for (const [id, a] of agents) agents.set(id, withAccess(a));
          renderMachines();
        },
        () => {}, // the buttons that need it stay hidden; the next snapshot asks again
      )
      .finally(() => (asking = false));
  };

  const agentChanged = (id: string) => {
    renderMachines();
    for (const t of terminals.values()) if (t.agent === id) cards.get(t.id)?.update();
  };

  const apply = (msg: any) => {
    switch (msg.type) {
      case "snapshot":
        loading.hidden = true;
        for (const id of [...terminals.keys()]) if (!msg.terminals?.some((t: Terminal) => t.id === id)) removeTerminal(id);
        agents.clear();
        stats.clear();
        for (const a of msg.agents ?? []) agents.set(a.id, withAccess(a));
        loadAccess();
        for (const [id, samples] of Object.entries(msg.stats ?? {})) stats.set(id, (samples as Sample[]).slice(-SLOTS));
        for (const t of [...(msg.terminals ?? [])].sort((a: Terminal, b: Terminal) => (newer(a, b) ? -1 : 1))) upsertTerminal(t);
        renderMachines();
        showEmpty();
        break;
      case "terminal":
        upsertTerminal(msg.terminal);
        break;
      case "terminal_removed":
        removeTerminal(msg.id);
        break;
      case "agent":
        agents.set(msg.agent.id, withAccess(msg.agent));
        if (!access.has(msg.agent.id)) loadAccess();
        agentChanged(msg.agent.id);
        break;
      case "agent_removed":
        agents.delete(msg.id);
        agentChanged(msg.id);
        break;
      case "stats": {
        const list = stats.get(msg.agent) ?? [];
        list.push(msg.sample);
        if (list.length > SLOTS) list.shift();
        stats.set(msg.agent, list);
        chips.get(msg.agent)?.update();
        for (const t of terminals.values()) if (t.agent === msg.agent) cards.get(t.id)?.update();
        break;
      }
      case "gpu": {
        chips.get(msg.agent)?.gpuEvent?.(msg);
        // Only the holder is told; the hub frees an idle lease itself after its grace time.
        const where = agents.get(msg.agent)?.name ?? msg.agent;
        if (msg.user === ctx.me.name && Array.isArray(msg.gpus)) {
          if (msg.event === "idle_warning") toast(`${gpuList(msg.gpus)} on ${where} idle: the hub gives it back soon unless it is used`);
          else if (msg.event === "idle_release") toast(`${gpuList(msg.gpus)} on ${where} given back after being idle`);
        }
        break;
      }
    }
  };

  // The events socket: a fresh snapshot after every reconnect replaces whatever we had.
  const backoff = new Backoff();
  let ws: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;
  const setLive = (state: string, text: string) => {
    live.dataset.state = state;
    live.textContent = text;
  };
  const retry = () => {
    timer = setTimeout(connect, backoff.next());
  };
  const connect = () => {
    const sock = new WebSocket(wsBase() + "/api/v1/events", "rexec.events.v1");
    let opened = false;
    sock.onopen = () => {
      opened = true;
      backoff.reset();
      setLive("live", "Live");
    };
    sock.onmessage = (m) => {
      let msg: any;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      apply(msg);
    };
    sock.onclose = () => {
      ws = null;
      if (disposed) return;
      setLive("down", "Reconnecting…");
      // Refused before the upgrade: an expired session is the usual reason.
      if (!opened)
        api<{ user: unknown }>("GET", "/sessions/current").then(
          (s) => (s.user ? retry() : app.signedOut()),
          (err) => (err.status === 401 ? app.signedOut() : retry()),
        );
      else retry();
    };
    ws = sock;
  };
  connect();

  const tick = setInterval(() => cards.forEach((c) => c.update()), 30000);

  return {
    terminals: () => [...terminals.values()],
    created(t) {
      upsertTerminal(t);
      const card = cards.get(t.id)!;
      card.el.classList.add("flash");
      setTimeout(() => card.el.classList.remove("flash"), 2500);
      card.focus();
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      clearInterval(tick);
      if (!ws) return;
      const sock = ws;
      sock.onclose = sock.onmessage = null;
      if (sock.readyState === WebSocket.CONNECTING) sock.onopen = () => sock.close();
      else sock.close();
    },
  };
}

function newer(a: Terminal, b: Terminal): boolean {
  return a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id);
}

interface CardContext {
  app: App;
  agents: Map<string, Agent>;
  stats: Map<string, Sample[]>;
  latest(agent: string): Sample | undefined;
  me: User;
}

function terminalCard(id: string, terminals: Map<string, Terminal>, ctx: CardContext): Card {
  const href = "/t/" + encodeURIComponent(id);
  const light = h("span", { class: "light" });
  const title = h("a", { class: "card-title", href });
  const badge = h("span", { class: "badge" });
  const label = h("span", { class: "status-label", "data-testid": "status-label" });
  const detail = h("span", { class: "detail" });
  const cpu = sparkline("cpu-sparkline");
  const mem = sparkline("mem-sparkline");
  const cpuText = h("span", { class: "metric-value" });
  const memText = h("span", { class: "metric-value" });
  const gpus = gpuStrip(ctx.me);
  const release = h("button", { type: "button", text: "Release GPUs", title: "Give this terminal's GPUs back; the shell keeps running", "data-testid": "card-release-gpus" });
  const activity = h("span", { class: "activity" });
  const viewers = h("span", { class: "viewers" });
  const toggle = h("button", { type: "button" });
  const t = () => terminals.get(id)!;

  toggle.onclick = async () => {
    const action = t().status === "stopped" ? "start" : "stop";
    toggle.disabled = true;
    try {
      await api("POST", `/terminals/${encodeURIComponent(id)}/${action}`);
    } catch (err) {
      toastError(err);
    } finally {
      toggle.disabled = false;
    }
  };
  release.onclick = async () => {
    release.disabled = true;
    try {
      const r = await api<{ released: number[] }>("DELETE", `/terminals/${encodeURIComponent(id)}/gpus`);
      toast(r.released?.length ? `Released ${gpuList(r.released)}` : "No GPUs to release");
    } catch (err) {
      toastError(err);
    } finally {
      release.disabled = false;
    }
  };
  const remove = async () => {
    const name = t().name || id;
    if (!(await confirmDialog(`Delete ${name}?`, "Its shell is ended and its output is gone. This cannot be undone.", "Delete"))) return;
    try {
      await api("DELETE", `/terminals/${encodeURIComponent(id)}`);
      toast(`Deleted ${name}`);
    } catch (err) {
      toastError(err);
    }
  };

  const el = h(
    "article",
    { class: "term-card", "data-testid": "terminal-card", "data-terminal-id": id },
    h("div", { class: "card-head" }, light, title, badge),
    h("div", { class: "card-sub" }, label, detail),
    h(
      "div",
      { class: "metrics" },
      h("div", { class: "metric" }, h("span", { class: "metric-label", text: "CPU" }), cpu.el, cpuText),
      h("div", { class: "metric" }, h("span", { class: "metric-label", text: "MEM" }), mem.el, memText),
    ),
    gpus.el,
    h("div", { class: "card-foot" }, activity, viewers),
    h(
      "div",
      { class: "card-actions" },
      h("a", { class: "button", href, text: "Open", "data-testid": "card-open" }),
      toggle,
      release,
      h("button", { type: "button", text: "Share", "data-testid": "card-share", onclick: () => shareDialog(t()) }),
      h("button", { type: "button", class: "danger", text: "Delete", "data-testid": "card-delete", onclick: remove }),
    ),
  );
  // The whole card opens the terminal; its own links and buttons keep their meaning.
  el.addEventListener("click", (e) => {
    if ((e.target as Element).closest("a, button") || getSelection()?.toString()) return;
    ctx.app.navigate(href);
  });

  return {
    el,
    focus: () => title.focus(),
    update() {
      const term = t();
      const agent = ctx.agents.get(term.agent);
      const samples = ctx.stats.get(term.agent) ?? [];
      const last = samples.at(-1);
      light.dataset.status = term.status;
      el.dataset.status = term.status;
      title.textContent = term.name || term.id;
      badge.textContent = term.kind;
      badge.dataset.kind = term.kind;
      label.textContent =
        (STATUS_LABEL[term.status] ?? term.status) + (term.status === "exited" && term.exit_code !== null ? ` (code ${term.exit_code})` : "");
      label.title = term.reason ?? "";
      const where = term.kind === "container" ? term.image ?? "" : [term.agent_name ?? agent?.name, agent?.host?.hostname].filter((x, i, all) => x && all.indexOf(x) === i).join(" · ");
      detail.textContent = where ? " · " + where : "";
      cpu.set(samples.map((s) => s.cpu_percent), 100, `CPU ${last ? Math.round(last.cpu_percent) + "%" : "unknown"}`);
      mem.set(samples.map((s) => (s.memory_total ? (100 * s.memory_used) / s.memory_total : 0)), 100, `Memory ${last ? bytes(last.memory_used) : "unknown"}`);
      cpuText.textContent = last ? `${Math.round(last.cpu_percent)}%` : "–";
      memText.textContent = last ? `${bytes(last.memory_used)} / ${bytes(last.memory_total)}` : "–";
      // Which GPUs this terminal holds: from the machine's holders, which the feed keeps current
      // (its terminal views do not carry "gpus"; the REST one does, but goes stale on a release).
      const leased = (agent?.gpus ?? []).filter((g) => typeof g.holder === "object" && g.holder?.terminal === id).map((g) => g.index);
      gpus.update(agent, samples, leased);
      release.hidden = !leased.length || term.status !== "running";
      activity.textContent = "Active " + ago(term.last_activity_at ?? term.created_at);
      viewers.textContent = term.viewers ? `${term.viewers} watching` : "";
      toggle.hidden = term.kind !== "container";
      toggle.textContent = term.status === "stopped" ? "Start" : "Stop";
      toggle.dataset.testid = term.status === "stopped" ? "card-start" : "card-stop";
    },
  };
}

function machineChip(id: string, ctx: CardContext): Card {
  const info = h("div", { class: "machine-info" });
  const gpus = gpuStrip(ctx.me);
  const shell = h("button", { type: "button", text: "New shell", title: "Open a terminal on this machine", "data-testid": "machine-shell" });
  const bookings = h("button", { type: "button", text: "Reservations", title: "Book this machine's GPUs ahead", "data-testid": "machine-reservations" });
  const access = h("button", { type: "button", text: "Access", title: "Who else may use this machine", "data-testid": "machine-access" });
  const el = h(
    "li",
    { class: "machine", "data-testid": "machine", "data-agent-id": id },
    info,
    h("div", { class: "machine-actions" }, shell, bookings, access),
    gpus.el,
  );
  const agent = () => ctx.agents.get(id);
  let picker: Live | null = null;
  let booked: ReservationsView | null = null;
  const opened = (t: Terminal) => ctx.app.navigate("/t/" + encodeURIComponent(t.id));
  shell.onclick = async () => {
    // With GPUs the picker asks which; without, the shell opens at once.
    if (agent()?.gpus?.length) {
      picker = gpuShellDialog(agent, ctx.me, opened);
      return;
    }
    shell.disabled = true;
    try {
      opened(await api<Terminal>("POST", "/terminals", { kind: "agent", agent: id }));
    } catch (err) {
      toastError(err);
      shell.disabled = false;
    }
  };
  bookings.onclick = () => (booked = reservationsDialog(agent, ctx.me));
  access.onclick = () => {
    const a = agent();
    if (a) grantsDialog(a);
  };
  return {
    el,
    focus: () => shell.focus(),
    update() {
      const a = agent();
      if (!a) return;
      const s = ctx.latest(id) ?? a.stats ?? undefined;
      const host = a.host ?? {};
      el.dataset.online = String(a.online);
      if (a.access) el.dataset.access = a.access;
      // A view grant sees the machine but may not start anything on it.
      shell.hidden = !a.online || a.access === "view";
      bookings.hidden = !a.gpus?.length;
      access.hidden = a.access !== "owner" && a.access !== "admin";
      const facts = [host.hostname !== a.name && host.hostname, host.os, host.arch, host.cpus && `${host.cpus} CPUs`, host.memory_total && bytes(host.memory_total)];
      const shared = a.access === "use" || a.access === "view" ? h("span", { class: "badge", "data-testid": "machine-access-level", title: "Shared with you", text: a.access === "use" ? "shared: use" : "shared: view" }) : null;
      info.replaceChildren(
        h("div", { class: "machine-head" }, h("span", { class: "light", "data-status": a.online ? "running" : "offline" }), h("strong", { text: a.name }), shared, h("span", { class: "muted", text: a.online ? "online" : `offline, seen ${ago(a.last_seen_at)}` })),
        h("div", { class: "muted small", text: facts.filter(Boolean).join(" · ") }),
        h("div", { class: "small", text: a.online && s ? `CPU ${Math.round(s.cpu_percent)}% · MEM ${bytes(s.memory_used)} / ${bytes(s.memory_total)}` : "" }),
      );
      gpus.update(a, ctx.stats.get(id) ?? (a.stats ? [a.stats] : []));
      picker?.update();
      booked?.update();
    },
    gpuEvent(msg) {
      if (msg.event === "reservation" || msg.event === "reservation_cancel") booked?.reload();
    },
  };
}
