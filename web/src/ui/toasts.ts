// Short notices in the corner; errors stay longer.
import { h } from "../dom";

export function toastHost(): { el: HTMLElement; notify: (text: string, kind?: string) => void } {
  const el = h("div", { class: "toasts", "aria-live": "polite", testid: "toasts" });
  const notify = (text: string, kind = "info"): void => {
    if (!text) return;
    const t = h("div", { class: `toast toast-${kind}`, testid: "toast", role: kind === "error" ? "alert" : "status" }, text);
    el.appendChild(t);
    while (el.children.length > 4) el.firstElementChild?.remove();
    window.setTimeout(() => t.remove(), kind === "error" || kind === "warning" ? 8_000 : 4_000);
  };
  return { el, notify };
}
