// Short messages in a corner: errors carry the hub's own words.
import { errorMessage } from "./api";

let region: HTMLElement | null = null;

export function toast(text: string, tone: "error" | "ok" = "ok"): void {
  if (!region?.isConnected) {
    region = document.createElement("div");
    region.className = "toasts";
    region.setAttribute("aria-live", "polite");
    document.body.append(region);
  }
  const el = document.createElement("div");
  el.className = "toast";
  el.dataset.tone = tone;
  el.dataset.testid = "toast";
  el.setAttribute("role", tone === "error" ? "alert" : "status");
  const msg = document.createElement("span");
  msg.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "ghost";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.onclick = () => el.remove();
  el.append(msg, close);
  region.append(el);
  setTimeout(() => el.remove(), tone === "error" ? 8000 : 3000);
}

export function toastError(err: unknown): void {
  toast(errorMessage(err), "error");
}
