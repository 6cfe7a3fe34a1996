// The dashboard's entry: the hub answers /, /login, /t/{id}, /s/{code}, /recordings, /r/{id} and /p/{code}
// with the same page, and this picks what to show. Links inside the app navigate without reloading.

import "./styles.css";
import { api, ApiError, Session, Terminal } from "./api";
import { dashboardPage } from "./dashboard";
import { addMachineDialog, createTerminalDialog } from "./dialogs";
import { loginPage } from "./login";
import { openPalette, PaletteItem } from "./palette";
import { playerPage } from "./player_page";
import { recordingsPage } from "./recordings_page";
import { sharePage } from "./share_page";
import { terminalPage } from "./terminal_page";
import { toastError } from "./toast";

export interface Page {
  dispose(): void;
  // The dashboard knows the terminals already; other pages let the palette ask the hub.
  terminals?(): Terminal[];
  created?(t: Terminal): void;
}

export interface App {
  readonly session: Session;
  navigate(path: string): void;
  signOut(): void;
  signedOut(): void;
  palette(): void;
  newTerminal(): void;
}

const root = document.getElementById("app")!;
let session: Session | null = null;
// Ask the hub once per page load; after that, signing in and out tells us.
let asked = false;
let page: Page | null = null;
let routing = 0;

const app: App = {
  get session() {
    return session!;
  },
  // path: with its query, if any (/recordings?terminal=t_…).
  navigate(path) {
    if (path !== location.pathname + location.search) history.pushState(null, "", path);
    void route();
  },
  signOut() {
    api("DELETE", "/sessions/current").then(app.signedOut, toastError);
  },
  signedOut() {
    session = null;
    app.navigate("/login");
  },
  palette: () => void showPalette(),
  newTerminal() {
    createTerminalDialog((t) => {
      if (page?.created) page.created(t);
      else app.navigate("/t/" + encodeURIComponent(t.id));
    });
  },
};

async function route(): Promise<void> {
  const mine = ++routing;
  page?.dispose();
  page = null;
  root.replaceChildren();
  document.title = "Rexec";
  const path = location.pathname;

  const share = /^\/s\/([^/]+)$/.exec(path);
  if (share) {
    page = sharePage(root, decodeURIComponent(share[1]));
    return;
  }
  // A recording share link: played for anyone holding it, signed in or not.
  const shared = /^\/p\/([^/]+)$/.exec(path);
  if (shared) {
    page = playerPage(root, { code: decodeURIComponent(shared[1]) });
    return;
  }
  if (!session && !asked) {
    try {
      // Signed out is a 200 with user null (not an error in the console).
      const current = await api<Session>("GET", "/sessions/current");
      session = current.user ? current : null;
      asked = true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) asked = true;
      else toastError(err);
    }
    if (mine !== routing) return;
  }
  if (!session) {
    if (path !== "/login") history.replaceState(null, "", "/login");
    page = loginPage(root, (s) => {
      session = s;
      app.navigate("/");
    });
    return;
  }
  if (path === "/login") history.replaceState(null, "", "/");
  const term = /^\/t\/([^/]+)$/.exec(path);
  const recording = /^\/r\/([^/]+)$/.exec(path);
  if (term) page = terminalPage(root, decodeURIComponent(term[1]));
  else if (recording) page = playerPage(root, { id: decodeURIComponent(recording[1]) });
  else if (path === "/recordings") page = recordingsPage(root, app, new URLSearchParams(location.search));
  else page = dashboardPage(root, app);
}

async function showPalette(): Promise<void> {
  let terminals: Terminal[] = [];
  try {
    terminals = page?.terminals?.() ?? (await api<{ terminals: Terminal[] }>("GET", "/terminals")).terminals;
  } catch (err) {
    toastError(err);
  }
  const items: PaletteItem[] = [
    ...terminals.map((t) => ({ label: `Open ${t.name || t.id}`, hint: t.status, run: () => app.navigate("/t/" + encodeURIComponent(t.id)) })),
    { label: "New terminal", run: app.newTerminal },
    { label: "Add machine", run: addMachineDialog },
    { label: "Dashboard", run: () => app.navigate("/") },
    { label: "Recordings", run: () => app.navigate("/recordings") },
    { label: "Sign out", run: app.signOut },
  ];
  openPalette(items);
}

// Capture phase, so the shortcut works even while xterm has the keyboard.
window.addEventListener(
  "keydown",
  (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === "k" && session && !location.pathname.startsWith("/s/") && !location.pathname.startsWith("/p/")) {
      e.preventDefault();
      e.stopPropagation();
      if (!document.querySelector("dialog[open]")) app.palette();
    }
  },
  true,
);

document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest?.("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.origin !== location.origin || a.hasAttribute("download")) return;
  e.preventDefault();
  app.navigate(a.pathname + a.search);
});

window.addEventListener("popstate", () => void route());
void route();
