// The phone's bottom bar: one view at a time (Quotes, Chart, Trade, Positions, History,
// Account). CSS shows it only on narrow screens; wider layouts show every panel at once.
import { h } from "../dom";
import type { View } from "../store";
import type { Ctx } from "./context";

const VIEWS: [View, string][] = [
  ["quotes", "Quotes"], ["chart", "Chart"], ["trade", "Trade"],
  ["positions", "Positions"], ["history", "History"], ["account", "Account"],
];

export function bottomNav(ctx: Ctx, terminal: HTMLElement): HTMLElement {
  const { store } = ctx;
  const buttons = VIEWS.map(([view, label]) => {
    const b = h("button", { type: "button", class: "nav-btn", testid: `nav-${view}`, "aria-pressed": "false" }, label);
    b.addEventListener("click", () => {
      store.setView(view);
      store.flush();
    });
    return [view, b] as const;
  });
  const render = (): void => {
    terminal.dataset.view = store.view;
    for (const [view, b] of buttons) b.setAttribute("aria-pressed", String(view === store.view));
  };
  store.on("view", render);
  render();
  return h("nav", { class: "bottom-nav", testid: "bottom-nav", "aria-label": "Views" }, buttons.map(([, b]) => b));
}
