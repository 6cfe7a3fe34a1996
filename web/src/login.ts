// Sign-in with an API token: the hub turns it into an HttpOnly cookie, so the token itself is
// forgotten as soon as the request is sent (never stored, never in a URL).
import { api, errorMessage, Session } from "./api";
import { h } from "./dom";
import type { Page } from "./main";

export function loginPage(root: HTMLElement, signedIn: (s: Session) => void): Page {
  const token = h("input", {
    id: "login-token",
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "rxk_…",
    required: true,
    "data-testid": "login-token",
  });
  const error = h("p", { class: "form-error", role: "alert", "data-testid": "login-error", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", text: "Sign in", "data-testid": "login-submit" });
  const form = h(
    "form",
    { class: "login card-box", novalidate: true },
    h("h1", {}, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Rexec"),
    h("p", { class: "muted", text: "Terminals on your machines and in containers, in the browser." }),
    h("label", { for: "login-token", text: "API token" }),
    token,
    h("p", { class: "hint", text: "An administrator's first token is in DATA_DIR/admin.token on the hub; 'rexec-hub user add NAME' makes one for someone else." }),
    error,
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value) {
      error.textContent = "Paste an API token (rxk_…).";
      error.hidden = false;
      token.focus();
      return;
    }
    submit.disabled = true;
    error.hidden = true;
    try {
      const session = await api<Session>("POST", "/sessions", { token: value });
      token.value = "";
      signedIn(session);
    } catch (err) {
      error.textContent = errorMessage(err);
      error.hidden = false;
      submit.disabled = false;
      token.select();
    }
  });
  document.title = "Sign in · Rexec";
  root.append(h("main", { class: "login-page" }, form));
  token.focus();
  return { dispose: () => {} };
}
