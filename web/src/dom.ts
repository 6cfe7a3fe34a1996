// Just enough DOM building to write the pages as nested calls instead of HTML strings (no
// innerHTML, so nothing the hub or an agent reports is ever parsed as markup).

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | null | undefined | ((e: any) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = String(value);
    else if (key === "text") el.textContent = String(value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  el.append(...(children.filter((c) => c !== null && c !== undefined && c !== false) as (Node | string)[]));
  return el;
}

// A native modal dialog: focus is trapped, Escape closes it, and it leaves the page when closed.
export function modal(title: string, ...content: Child[]): HTMLDialogElement {
  const d = h(
    "dialog",
    { class: "modal", "aria-label": title },
    h("header", {}, h("h2", { text: title }), h("button", { type: "button", class: "ghost", "aria-label": "Close", text: "×", onclick: () => d.close() })),
    ...content,
  );
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

function roughly(seconds: number): string {
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

export function ago(unixSeconds: number | undefined): string {
  if (!unixSeconds) return "never";
  const s = Date.now() / 1000 - unixSeconds;
  return s < 45 ? "just now" : `${roughly(s)} ago`;
}

export function until(unixSeconds: number): string {
  return `in ${roughly(unixSeconds - Date.now() / 1000)}`;
}

export function bytes(n: number | undefined): string {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

// A length of time as a clock shows it: 0:07, 12:03, 1:02:03.
export function clock(seconds: number | undefined): string {
  const s = Math.max(0, Math.floor(seconds ?? 0));
  const two = (n: number) => String(n).padStart(2, "0");
  const hours = Math.floor(s / 3600);
  return hours ? `${hours}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}

export function localTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleString();
}
