// The bottom panel: open positions (live P&L, commission and swap so far, modify SL/TP and the
// trailing stop, close whole or part), pending
// orders (cancel) and history, as tabs. On a phone the tables become cards (see layout.css).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { OrderSide, type Order, type Position } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { dec, fmtMoney, fmtPrice, fmtVolume, isPositiveDecimal, signOf } from "../decimal";
import { h, setText } from "../dom";
import { fmtTime } from "../time";
import { closePrice, livePnl } from "../trading";
import type { Ctx } from "./context";
import { field, formDialog } from "./dialogs";
import { historyView } from "./history";
import { orderTypeWord, sideWord } from "./labels";

type TabName = "positions" | "orders" | "history";

export function blotterPanel(ctx: Ctx): HTMLElement {
  const { store } = ctx;
  let active: TabName = "positions";

  const decimalsOf = (symbol: string): number => store.bySymbol.get(symbol)?.priceDecimals ?? 2;
  const px = (symbol: string, v: string): string => (v ? fmtPrice(v, decimalsOf(symbol)) : "—");

  // ---- positions -------------------------------------------------------------------------
  const posBody = h("tbody", { testid: "positions-body" });
  const posCells = new Map<string, { current: HTMLElement; pnl: HTMLElement }>();

  const renderPositions = (): void => {
    posCells.clear();
    const rows = [...store.positions.values()].sort((a, b) => tsOf(b.openTime) - tsOf(a.openTime));
    if (rows.length === 0) {
      posBody.replaceChildren(emptyRow(POSITION_HEADS.length, "No open positions", "positions-empty"));
    } else {
      posBody.replaceChildren(...rows.map(positionRow));
    }
    updatePnl();
    setText(tabPositions.querySelector(".count")!, String(rows.length));
  };

  const positionRow = (p: Position): HTMLTableRowElement => {
    const current = h("td", { class: "num", testid: "position-current", "data-label": "Current" }, "—");
    const pnl = h("td", { class: "num pnl", testid: "position-pnl", "data-label": "P&L (USD)" }, "—");
    posCells.set(p.positionId, { current, pnl });
    const modify = h("button", { type: "button", class: "btn btn-xs", testid: "position-modify", title: "Set stop loss, take profit and trailing stop" }, "SL/TP");
    const close = h("button", { type: "button", class: "btn btn-xs btn-danger", testid: "position-close" }, "Close");
    modify.addEventListener("click", () => openModify(p));
    close.addEventListener("click", () => openClose(p));
    return h("tr", { testid: "position-row", "data-position-id": p.positionId, "data-symbol": p.symbol },
      h("td", { class: "sym", "data-label": "Symbol" }, p.symbol),
      h("td", { class: p.side === OrderSide.BUY ? "side-buy" : "side-sell", testid: "position-side", "data-label": "Side" }, sideWord(p.side)),
      h("td", { class: "num", testid: "position-volume", "data-label": "Volume" }, fmtVolume(p.volume)),
      h("td", { class: "num", testid: "position-open", "data-label": "Open" }, px(p.symbol, p.openPrice)),
      current,
      pnl,
      h("td", { class: "num", testid: "position-sl", "data-label": "S/L" }, px(p.symbol, p.stopLoss)),
      h("td", { class: "num", testid: "position-tp", "data-label": "T/P" }, px(p.symbol, p.takeProfit)),
      h("td", { class: "num", testid: "position-trailing", "data-label": "Trailing" }, p.trailingStop ? px(p.symbol, p.trailingStop) : "—"),
      money(p.commission, "position-commission", "Commission"),
      money(p.swap, "position-swap", "Swap"),
      h("td", { class: "num", testid: "position-margin", "data-label": "Margin" }, fmtMoney(p.margin)),
      h("td", { class: "num time", testid: "position-time", "data-label": "Opened" }, fmtTime(p.openTime ? timestampMs(p.openTime) : null)),
      h("td", { class: "actions" }, modify, close));
  };

  const updatePnl = (): void => {
    for (const [id, cells] of posCells) {
      const p = store.positions.get(id);
      if (!p) continue;
      const c = closePrice(store, p);
      setText(cells.current, c ? fmtPrice(c, decimalsOf(p.symbol)) : px(p.symbol, p.currentPrice));
      const pnl = livePnl(store, p);
      setText(cells.pnl, fmtMoney(pnl, true));
      const s = signOf(pnl);
      cells.pnl.classList.toggle("up", s > 0);
      cells.pnl.classList.toggle("down", s < 0);
    }
  };

  const openModify = (p: Position): void => {
    const d = decimalsOf(p.symbol);
    const sl = h("input", { inputmode: "decimal", autocomplete: "off", testid: "modify-sl", value: p.stopLoss, placeholder: "None" });
    const tp = h("input", { inputmode: "decimal", autocomplete: "off", testid: "modify-tp", value: p.takeProfit, placeholder: "None" });
    const trailing = h("input", { inputmode: "decimal", autocomplete: "off", testid: "modify-trailing", value: p.trailingStop, placeholder: "None" });
    const q = store.quotes.get(p.symbol)?.quote;
    const hint = q ? `Now: bid ${fmtPrice(q.bid, d)} / ask ${fmtPrice(q.ask, d)}. Empty removes the level.` : "Empty removes the level.";
    const dlg = formDialog(`${sideWord(p.side)} ${fmtVolume(p.volume)} ${p.symbol} — stop loss / take profit`, "modify-dialog",
      [field("modify-sl", "Stop loss", sl), field("modify-tp", "Take profit", tp, hint),
        field("modify-trailing", "Trailing stop (distance in price)", trailing,
          "The stop loss follows the price at this distance, only in your favour. Empty removes it.")], "Save");
    sl.focus();
    dlg.form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      for (const [input, name] of [[sl, "Stop loss"], [tp, "Take profit"], [trailing, "Trailing stop"]] as const) {
        if (input.value.trim() && !isPositiveDecimal(input.value)) {
          dlg.error.textContent = `${name} must be ${input === trailing ? "a distance" : "a price"} or empty.`;
          input.focus();
          return;
        }
      }
      dlg.submit.disabled = true;
      try {
        const res = await ctx.clients.trading.modifyPosition({
          positionId: p.positionId, stopLoss: sl.value.trim(), takeProfit: tp.value.trim(),
          trailingStop: trailing.value.trim(), accountId: store.accountId,
        });
        store.upsertPosition(res.position);
        ctx.notify(`${p.symbol}: stop loss ${sl.value.trim() || "none"}, take profit ${tp.value.trim() || "none"}, trailing stop ${trailing.value.trim() || "none"}`, "success");
        dlg.close();
      } catch (e) {
        dlg.error.textContent = describeError(e);
        dlg.submit.disabled = false;
      }
    });
  };

  const openClose = (p: Position): void => {
    const vol = h("input", { inputmode: "decimal", autocomplete: "off", testid: "close-volume", value: p.volume });
    const inst = store.bySymbol.get(p.symbol);
    const dlg = formDialog(`Close ${sideWord(p.side)} ${p.symbol}`, "close-dialog",
      [field("close-volume", "Volume to close (lots)", vol,
        `Open: ${fmtVolume(p.volume)} lots${inst ? ` · step ${inst.volumeStep}` : ""}. Less than all closes part of it.`)],
      "Close position");
    vol.select();
    dlg.form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const v = vol.value.trim();
      if (!isPositiveDecimal(v)) {
        dlg.error.textContent = "Enter the volume to close.";
        return;
      }
      const whole = dec(v)!.gte(dec(p.volume)!);
      dlg.submit.disabled = true;
      try {
        const res = await ctx.clients.trading.closePosition({ positionId: p.positionId, volume: whole ? "" : v, accountId: store.accountId });
        store.addTrade(res.trade);
        if (res.position && !dec(res.position.volume)?.isZero()) store.upsertPosition(res.position);
        else store.removePosition(p.positionId);
        store.setAccount(res.account);
        const t = res.trade;
        if (t) ctx.notify(`Closed ${fmtVolume(t.volume)} ${t.symbol} at ${px(t.symbol, t.closePrice)}: ${fmtMoney(t.realizedPnl, true)} USD`, "success");
        dlg.close();
      } catch (e) {
        dlg.error.textContent = describeError(e);
        dlg.submit.disabled = false;
      }
    });
  };

  // ---- pending orders --------------------------------------------------------------------
  const ordBody = h("tbody", { testid: "orders-body" });
  const renderOrders = (): void => {
    const rows = [...store.orders.values()].sort((a, b) => tsOf(b.createTime) - tsOf(a.createTime));
    ordBody.replaceChildren(...(rows.length ? rows.map(orderRow) : [emptyRow(9, "No pending orders", "orders-empty")]));
    setText(tabOrders.querySelector(".count")!, String(rows.length));
  };
  const orderRow = (o: Order): HTMLTableRowElement => {
    const cancel = h("button", { type: "button", class: "btn btn-xs btn-danger", testid: "order-cancel" }, "Cancel");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const res = await ctx.clients.trading.cancelOrder({ orderId: o.orderId, accountId: store.accountId });
        store.upsertOrder(res.order);
        ctx.notify(`${orderTypeWord(o.side, o.type)} ${o.symbol} cancelled`, "success");
      } catch (e) {
        ctx.notify(describeError(e), "error");
        cancel.disabled = false;
      }
    });
    return h("tr", { testid: "order-row", "data-order-id": o.orderId, "data-symbol": o.symbol },
      h("td", { class: "sym", "data-label": "Symbol" }, o.symbol),
      h("td", { class: o.side === OrderSide.BUY ? "side-buy" : "side-sell", testid: "order-type", "data-label": "Type" }, orderTypeWord(o.side, o.type)),
      h("td", { class: "num", testid: "order-volume", "data-label": "Volume" }, fmtVolume(o.volume)),
      h("td", { class: "num", testid: "order-price", "data-label": "Price" }, px(o.symbol, o.price)),
      h("td", { class: "num", "data-label": "S/L" }, px(o.symbol, o.stopLoss)),
      h("td", { class: "num", "data-label": "T/P" }, px(o.symbol, o.takeProfit)),
      h("td", { class: "num", "data-label": "Leverage" }, o.leverage ? `1:${o.leverage}` : "—"),
      h("td", { class: "num time", "data-label": "Placed" }, fmtTime(o.createTime ? timestampMs(o.createTime) : null)),
      h("td", { class: "actions" }, cancel));
  };

  // ---- tabs ------------------------------------------------------------------------------
  const tab = (name: TabName, label: string, withCount: boolean): HTMLButtonElement => {
    const b = h("button", { type: "button", role: "tab", class: "tab", testid: `tab-${name}`, "aria-controls": `pane-${name}` },
      label, withCount ? h("span", { class: "count" }, "0") : null);
    b.addEventListener("click", () => show(name));
    return b;
  };
  const tabPositions = tab("positions", "Positions", true);
  const tabOrders = tab("orders", "Pending orders", true);
  const tabHistory = tab("history", "History", false);

  const table = (heads: [string, boolean][], body: HTMLElement): HTMLTableElement =>
    h("table", { class: "grid-table cards" },
      h("thead", {}, h("tr", {}, heads.map(([t, num]) => h("th", { class: num ? "num" : "" }, t)))), body);

  const panes: Record<TabName, HTMLElement> = {
    positions: h("div", { class: "pane scroll", id: "pane-positions", role: "tabpanel", testid: "positions" },
      // P&L next to the prices: on a narrow screen the columns after it scroll under the actions.
      table(POSITION_HEADS, posBody)),
    orders: h("div", { class: "pane scroll", id: "pane-orders", role: "tabpanel", testid: "orders" },
      table([["Symbol", false], ["Type", false], ["Volume", true], ["Price", true], ["S/L", true], ["T/P", true],
        ["Leverage", true], ["Placed", true], ["", false]], ordBody)),
    history: h("div", { class: "pane", id: "pane-history", role: "tabpanel", testid: "history" }, historyView(ctx)),
  };
  const tabs: Record<TabName, HTMLButtonElement> = { positions: tabPositions, orders: tabOrders, history: tabHistory };

  function show(name: TabName): void {
    active = name;
    for (const n of Object.keys(panes) as TabName[]) {
      panes[n].hidden = n !== active;
      tabs[n].setAttribute("aria-selected", String(n === active));
    }
  }

  store.on("positions", renderPositions);
  store.on("quotes", updatePnl);
  store.on("instruments", renderPositions);
  store.on("orders", renderOrders);
  // The phone's Positions and History views are this one panel on another tab.
  store.on("view", () => {
    if (store.view === "history") show("history");
    else if (store.view === "positions" && active === "history") show("positions");
  });

  const panel = h("section", { class: "panel blotter", "aria-label": "Positions, orders and history", "data-pane": "positions history" },
    h("header", { class: "panel-head tabs", role: "tablist" }, tabPositions, tabOrders, tabHistory),
    h("div", { class: "panel-body" }, panes.positions, panes.orders, panes.history));
  renderPositions();
  renderOrders();
  show("positions");
  return panel;
}

const POSITION_HEADS: [string, boolean][] = [["Symbol", false], ["Side", false], ["Volume", true], ["Open", true],
  ["Current", true], ["P&L (USD)", true], ["S/L", true], ["T/P", true], ["Trailing", true], ["Commission", true],
  ["Swap", true], ["Margin", true], ["Opened", true], ["", false]];

/** A signed USD cell (commission, swap), "0.00" when the platform sends none. */
function money(v: string, testid: string, label: string): HTMLTableCellElement {
  const td = h("td", { class: "num", testid, "data-label": label }, fmtMoney(v || "0"));
  td.classList.toggle("down", signOf(v) < 0);
  td.classList.toggle("up", signOf(v) > 0);
  return td;
}

function tsOf(t: Parameters<typeof timestampMs>[0] | undefined): number {
  return t ? timestampMs(t) : 0;
}

function emptyRow(cols: number, text: string, testid: string): HTMLTableRowElement {
  return h("tr", { class: "empty", testid }, h("td", { colspan: cols }, text));
}
