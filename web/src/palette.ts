// Ctrl-K / Cmd-K: every terminal and action by name, for the keyboard.
import { h } from "./dom";

export interface PaletteItem {
  label: string;
  hint?: string;
  run(): void;
}

export function openPalette(items: PaletteItem[]): void {
  const input = h("input", {
    type: "text",
    class: "palette-input",
    placeholder: "Type a terminal or an action…",
    role: "combobox",
    "aria-expanded": "true",
    "aria-controls": "palette-list",
    "aria-label": "Command",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "palette-input",
  });
  const list = h("ul", { id: "palette-list", class: "palette-list", role: "listbox", "aria-label": "Results" });
  const dialog = h("dialog", { class: "palette", "aria-label": "Command palette", "data-testid": "palette" }, input, list);
  let shown: PaletteItem[] = [];
  let active = 0;

  const run = (item: PaletteItem | undefined) => {
    if (!item) return;
    dialog.close();
    item.run();
  };
  const render = () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    shown = items.filter((it) => words.every((w) => it.label.toLowerCase().includes(w)));
    active = Math.min(active, Math.max(shown.length - 1, 0));
    list.replaceChildren(
      ...shown.map((it, i) =>
        h(
          "li",
          {
            id: `palette-${i}`,
            role: "option",
            "aria-selected": String(i === active),
            "data-testid": "palette-item",
            onmousedown: (e: MouseEvent) => e.preventDefault(), // keep focus in the input
            onclick: () => run(it),
          },
          h("span", { text: it.label }),
          it.hint ? h("span", { class: "hint", text: it.hint }) : null,
        ),
      ),
    );
    if (!shown.length) list.append(h("li", { class: "muted", text: "Nothing matches" }));
    input.setAttribute("aria-activedescendant", shown.length ? `palette-${active}` : "");
    list.children[active]?.scrollIntoView({ block: "nearest" });
  };

  input.addEventListener("input", () => {
    active = 0;
    render();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (shown.length) active = (active + (e.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if (e.key === "Enter") {
      e.preventDefault();
      run(shown[active]);
    }
  });
  // A click on the backdrop lands on the dialog itself.
  dialog.addEventListener("click", (e) => e.target === dialog && dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  render();
  dialog.showModal();
  input.focus();
}
