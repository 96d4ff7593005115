// Market watch: every instrument with live bid/ask and change since the day's open.
// Cells flash green/red when the bid moves; click or Enter selects the chart and ticket symbol.
// A stale price is greyed with its age; every price greys while the quote stream reconnects; an
// instrument outside its trading session says so.
import { SwapType, type Instrument } from "../../../gen/ts/exness/market/v1/market_pb";
import { fmtAge } from "../freshness";
import { Decimal, dec, fmtMoney, fmtPrice, signOf } from "../decimal";
import { flash, h, setText } from "../dom";
import { marketState } from "../sessions";
import type { Ctx } from "./context";

interface Row {
  tr: HTMLTableRowElement;
  bid: HTMLElement;
  ask: HTMLElement;
  change: HTMLElement;
  age: HTMLElement;
  closed: HTMLElement;
  tick: number;
}

export function instrumentsPanel(ctx: Ctx): HTMLElement {
  const { store } = ctx;
  const tbody = h("tbody");
  const rows = new Map<string, Row>();

  const build = (): void => {
    tbody.replaceChildren();
    rows.clear();
    for (const inst of store.instruments) {
      const bid = h("td", { class: "num", testid: `bid-${inst.symbol}` }, "—");
      const ask = h("td", { class: "num", testid: `ask-${inst.symbol}` }, "—");
      const change = h("td", { class: "num change", testid: `change-${inst.symbol}` }, "—");
      const age = h("span", { class: "quote-age", testid: `age-${inst.symbol}`, hidden: true }, "");
      const closed = h("span", { class: "market-closed", testid: `closed-${inst.symbol}`, hidden: true }, "Closed");
      const tr = h("tr", {
        class: "instrument-row", tabindex: 0, testid: `instrument-${inst.symbol}`,
        "data-symbol": inst.symbol, title: inst.description, role: "row",
      },
        h("td", { class: "sym" }, h("span", { class: "sym-code" }, inst.symbol),
          h("span", { class: "sym-desc" }, inst.description), age, closed),
        bid, ask, change);
      const choose = (): void => store.select(inst.symbol);
      tr.addEventListener("click", choose);
      tr.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          choose();
        } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
          ev.preventDefault();
          const next = (ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling) as HTMLElement | null;
          next?.focus();
        }
      });
      rows.set(inst.symbol, { tr, bid, ask, change, age, closed, tick: 0 });
      tbody.appendChild(tr);
    }
    markSelected();
    update();
  };

  const markSelected = (): void => {
    for (const [sym, row] of rows) row.tr.setAttribute("aria-selected", String(sym === store.selected));
  };

  /** Greys what may not be traded on, and says how old a stale price is. */
  const markFreshness = (): void => {
    panel.classList.toggle("prices-offline", store.streams.quotes !== "live");
    for (const [sym, row] of rows) {
      const f = store.freshness(sym);
      row.tr.dataset.fresh = f.state;
      const showAge = f.state === "stale" || (f.state === "offline" && f.ageMs !== null);
      row.age.hidden = !showAge;
      if (showAge) setText(row.age, `${f.ageMs === null ? "?" : fmtAge(f.ageMs)} old`);
      row.tr.title = f.state === "fresh" ? (store.bySymbol.get(sym)?.description ?? sym) : f.reason;
      const open = marketState(store.bySymbol.get(sym), store.now).open;
      row.tr.dataset.market = open ? "open" : "closed";
      row.closed.hidden = open;
    }
  };

  const update = (): void => {
    markFreshness();
    for (const [sym, row] of rows) {
      const view = store.quotes.get(sym);
      const inst = store.bySymbol.get(sym);
      if (!view || !inst) continue;
      const d = inst.priceDecimals;
      setText(row.bid, fmtPrice(view.quote.bid, d));
      setText(row.ask, fmtPrice(view.quote.ask, d));
      const ref = dec(store.referenceOf(sym));
      const bid = dec(view.quote.bid);
      if (ref && bid && ref.gt(0)) {
        const pct = bid.minus(ref).div(ref).times(100);
        const text = (pct.gt(0) ? "+" : pct.lt(0) ? "−" : "") + pct.abs().toFixed(2, Decimal.ROUND_HALF_UP) + "%";
        setText(row.change, text);
        const s = signOf(pct);
        row.change.classList.toggle("up", s > 0);
        row.change.classList.toggle("down", s < 0);
      }
      if (view.tick !== row.tick) {
        if (row.tick !== 0 && view.dir !== 0) {
          const cls = view.dir > 0 ? "flash-up" : "flash-down";
          flash(row.bid, cls);
          flash(row.ask, cls);
        }
        row.tick = view.tick;
      }
    }
  };

  // Trading conditions of the selected instrument, under the list.
  const specList = h("dl", { testid: "instrument-spec" });
  const specTitle = h("h2", {}, "Specification");
  const renderSpec = (): void => {
    const i = store.bySymbol.get(store.selected);
    if (!i) return void specList.replaceChildren();
    const row = (k: string, v: string): HTMLElement[] => [h("dt", {}, k), h("dd", { class: "num" }, v)];
    setText(specTitle, `${i.symbol} specification`);
    // The account type on screen sets the spread and commission.
    const terms = store.accountTypes.find((t) => t.name === store.accountType)?.terms.find((t) => t.symbol === i.symbol);
    specList.replaceChildren(
      ...row("Contract size", i.contractSize),
      ...row("Volume min / step", `${i.volumeMin} / ${i.volumeStep}`),
      ...row("Volume max", i.volumeMax),
      ...row("Max leverage", `1:${i.maxLeverage}`),
      ...row("Spread markup", terms?.spreadMarkup || i.spreadMarkup || "0"),
      ...row("Commission / lot / side", dec(terms?.commissionPerLot)?.gt(0) ? `${fmtMoney(terms?.commissionPerLot)} USD` : "none"),
      ...row("Digits", String(i.priceDecimals)),
      ...row("Trading hours (UTC)", sessionsText(i.sessions)),
      ...(swapText(i) ? row("Swap long / short", swapText(i)) : []));
  };

  store.on("instruments", build);
  store.on("instruments", renderSpec);
  store.on("selected", markSelected);
  store.on("selected", renderSpec);
  store.on("accounts", renderSpec);
  store.on("accountSwitch", renderSpec);
  store.on("quotes", update);
  store.on("clock", markFreshness);
  store.on("connection", markFreshness);

  const panel: HTMLElement = h("section", { class: "panel instruments", testid: "instruments", "aria-label": "Instruments", "data-pane": "quotes" },
    h("header", { class: "panel-head" }, h("h2", {}, "Market watch")),
    h("div", { class: "panel-body scroll" },
      h("table", { class: "grid-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Symbol"), h("th", { class: "num" }, "Bid"), h("th", { class: "num" }, "Ask"),
          h("th", { class: "num" }, "Chg"))),
        tbody)),
    h("div", { class: "spec" }, specTitle, specList));
  build();
  renderSpec();
  return panel;
}

const WEEKDAYS = ["", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** "Sun 22:05 – Fri 20:55", or "24/7" for an instrument without sessions. */
function sessionsText(sessions: Instrument["sessions"]): string {
  if (sessions.length === 0) return "24/7";
  return sessions.map((s) => `${WEEKDAYS[s.openWeekday] ?? "?"} ${s.openTime} – ${WEEKDAYS[s.closeWeekday] ?? "?"} ${s.closeTime}`).join(", ");
}

/** The instrument's swap rates with their unit; "" when it charges none. */
function swapText(i: Instrument): string {
  if (i.swapType === SwapType.UNSPECIFIED || (!i.swapLong && !i.swapShort)) return "";
  const unit = i.swapType === SwapType.POINTS ? " points" : "% a year";
  return `${i.swapLong || "0"} / ${i.swapShort || "0"}${unit}`;
}
