// The dashboard's dialogs: new terminal, add machine, share, confirm.
import { Agent, api, Terminal } from "./api";
import { copyText } from "./clipboard";
import { h, modal, until } from "./dom";
import { toast, toastError } from "./toast";

interface Image {
  id: string;
  tags: string[];
}

export function createTerminalDialog(created: (t: Terminal) => void): void {
  const kind = h(
    "select",
    { id: "create-kind", "data-testid": "create-kind" },
    h("option", { value: "container", text: "Container (from a local image)" }),
    h("option", { value: "agent", text: "Machine (a shell on an agent)" }),
  );
  const image = h("select", { id: "create-image", "data-testid": "create-image", disabled: true }, h("option", { text: "Loading images…" }));
  const agent = h("select", { id: "create-agent", "data-testid": "create-agent", disabled: true }, h("option", { text: "Loading machines…" }));
  const name = h("input", { id: "create-name", type: "text", placeholder: "optional", autocomplete: "off", maxlength: 64, "data-testid": "create-name" });
  const submit = h("button", { type: "submit", class: "primary", text: "Create", "data-testid": "create-submit" });
  const imageField = h("div", { class: "field" }, h("label", { for: "create-image", text: "Image" }), image);
  const agentField = h("div", { class: "field", hidden: true }, h("label", { for: "create-agent", text: "Machine" }), agent);
  const form = h(
    "form",
    { class: "form" },
    h("div", { class: "field" }, h("label", { for: "create-kind", text: "Kind" }), kind),
    imageField,
    agentField,
    h("div", { class: "field" }, h("label", { for: "create-name", text: "Name" }), name),
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal("New terminal", form);

  const showKind = () => {
    imageField.hidden = kind.value !== "container";
    agentField.hidden = kind.value !== "agent";
  };
  kind.addEventListener("change", showKind);

  const fill = (select: HTMLSelectElement, values: [string, string][], empty: string, preferred?: string) => {
    select.replaceChildren(...(values.length ? values.map(([v, label]) => h("option", { value: v, text: label })) : [h("option", { value: "", text: empty })]));
    select.disabled = !values.length;
    if (preferred && values.some(([v]) => v === preferred)) select.value = preferred;
  };
  Promise.all([
    api<{ images: Image[] }>("GET", "/images").then(
      (r) => r.images.flatMap((i) => i.tags).filter((t) => t && t !== "<none>:<none>").sort(),
      shownAsNull,
    ),
    api<{ agents: Agent[] }>("GET", "/agents").then(
      (r) => r.agents.filter((a) => a.online),
      shownAsNull,
    ),
  ]).then(([tags, online]) => {
    fill(image, (tags ?? []).map((t) => [t, t]), tags ? "No local images (build them with make images)" : "Images unavailable", "rexec/debian:12");
    fill(
      agent,
      (online ?? []).map((a) => [a.id, a.host?.hostname && a.host.hostname !== a.name ? `${a.name} (${a.host.hostname})` : a.name]),
      online ? "No machine is online: add one first" : "Machines unavailable",
    );
    // No container images but a machine online: offer what works.
    if (image.disabled && !agent.disabled) {
      kind.value = "agent";
      showKind();
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body: Record<string, string> =
      kind.value === "container" ? { kind: "container", image: image.value } : { kind: "agent", agent: agent.value };
    if (!body.image && !body.agent) return toast(kind.value === "container" ? "Pick an image" : "Pick a machine", "error");
    if (name.value.trim()) body.name = name.value.trim();
    submit.disabled = true;
    try {
      const t = await api<Terminal>("POST", "/terminals", body);
      dialog.close();
      created(t);
    } catch (err) {
      toastError(err);
      submit.disabled = false;
    }
  });
  kind.focus();
}

export function addMachineDialog(): void {
  const body = h("div", { class: "form" }, h("p", { class: "muted", text: "Making a one-time enrollment token…" }));
  modal("Add machine", body);
  api<{ install_command: string; expires_at: number; uses: number }>("POST", "/agent-enrollments", {}).then((r) => {
    body.replaceChildren(
      h("p", {}, "Run this on the machine. It installs rexec-agent as a systemd service; its card lights up here within seconds."),
      copyBlock(r.install_command, "install-command"),
      h("p", { class: "hint", text: `The token in it enrolls ${r.uses === 1 ? "one machine" : r.uses + " machines"} and expires ${until(r.expires_at)}. Keep it to yourself.` }),
    );
  }, (err) => {
    body.replaceChildren(h("p", { class: "form-error", text: (err as Error).message }));
    toastError(err);
  });
}

export function shareDialog(t: Terminal): void {
  const mode = h(
    "select",
    { id: "share-mode", "data-testid": "share-mode" },
    h("option", { value: "view", text: "View only: watch, no typing" }),
    h("option", { value: "control", text: "Control: watch and type" }),
  );
  const expires = h(
    "select",
    { id: "share-expires" },
    h("option", { value: "3600", text: "1 hour" }),
    h("option", { value: "86400", text: "1 day" }),
    h("option", { value: "604800", text: "7 days" }),
  );
  const submit = h("button", { type: "submit", class: "primary", text: "Create link", "data-testid": "share-create" });
  const result = h("div", { class: "share-result" });
  const form = h(
    "form",
    { class: "form" },
    h("div", { class: "field" }, h("label", { for: "share-mode", text: "Access" }), mode),
    h("div", { class: "field" }, h("label", { for: "share-expires", text: "Expires after" }), expires),
    h("div", { class: "actions" }, submit),
    result,
  );
  modal(`Share ${t.name || t.id}`, form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const s = await api<{ id: string; url: string; mode: string }>("POST", `/terminals/${encodeURIComponent(t.id)}/shares`, {
        mode: mode.value,
        expires_in: Number(expires.value),
      });
      const revoke = h("button", { type: "button", class: "danger", text: "Revoke link" });
      revoke.onclick = () =>
        api("DELETE", `/shares/${encodeURIComponent(s.id)}`).then(() => {
          result.replaceChildren(h("p", { class: "muted", text: "Link revoked." }));
          toast("Link revoked");
        }, toastError);
      result.replaceChildren(
        h("p", { text: s.mode === "view" ? "Anyone with this link can watch:" : "Anyone with this link can watch and type:" }),
        copyBlock(s.url, "share-url"),
        h("div", { class: "actions" }, revoke),
      );
    } catch (err) {
      toastError(err);
    } finally {
      submit.disabled = false;
    }
  });
  mode.focus();
}

export function confirmDialog(title: string, text: string, confirm: string): Promise<boolean> {
  return new Promise((resolve) => {
    let ok = false;
    const cancel = h("button", { type: "button", text: "Cancel" });
    const yes = h("button", { type: "button", class: "danger", text: confirm, "data-testid": "confirm-ok" });
    const d = modal(title, h("div", { class: "form" }, h("p", { text }), h("div", { class: "actions" }, cancel, yes)));
    cancel.onclick = () => d.close();
    yes.onclick = () => {
      ok = true;
      d.close();
    };
    d.addEventListener("close", () => resolve(ok));
    cancel.focus();
  });
}

function shownAsNull(err: unknown): null {
  toastError(err);
  return null;
}

// Text to copy: shown whole (it may be a secret the user needs to read), with a Copy button.
function copyBlock(text: string, testid: string): HTMLElement {
  const copy = h("button", { type: "button", text: "Copy", "data-testid": `${testid}-copy` });
  copy.onclick = async () => {
    if (await copyText(text)) {
      copy.textContent = "Copied";
      setTimeout(() => (copy.textContent = "Copy"), 1500);
    } else toast("Copy failed: select the text and copy it by hand", "error");
  };
  return h("div", { class: "copy-block" }, h("code", { "data-testid": testid, text }), copy);
}
