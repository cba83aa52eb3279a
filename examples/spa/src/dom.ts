// A few lines instead of a UI framework: build elements, read forms, show messages.

type Child = Node | string | null | undefined | false;

/** `h("button", { onclick }, "Sign in")`: an element with properties and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, unknown>> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("on") || key === "className" || key === "innerHTML") {
      (el as unknown as Record<string, unknown>)[key] = value;
    } else if (value !== undefined && value !== false) {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

/** A labelled input. */
export function field(label: string, name: string, type = "text", extra: Record<string, unknown> = {}) {
  return h("label", {}, label, h("input", { name, type, required: true, ...extra }));
}

/** A form whose submit handler gets its values by input name. */
export function form(
  id: string,
  children: Child[],
  onSubmit: (values: Record<string, string>, form: HTMLFormElement) => Promise<void>,
): HTMLFormElement {
  const el = h("form", { id }, ...children);
  el.onsubmit = async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(
      [...new FormData(el).entries()].map(([k, v]) => [k, String(v)]),
    );
    const button = el.querySelector("button");
    if (button) button.disabled = true;
    try {
      await onSubmit(values, el);
    } finally {
      if (button) button.disabled = false;
    }
  };
  return el;
}

/** The one status line under the page title. */
export function say(text: string, kind: "info" | "error" = "info"): void {
  const el = document.getElementById("message")!;
  el.textContent = text;
  el.className = kind;
}
