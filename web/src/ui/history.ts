// History: closed trades and balance operations in one list, with a period filter, totals for
// the period, pages of PAGE_SIZE rows and CSV export of the whole period.
import { OrderSide } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { download, toCsv } from "../csv";
import { fmtMoney, fmtPrice, fmtVolume, signOf } from "../decimal";
import { h, setText } from "../dom";
import { totalsOf, TradesAndSessionLedger, type HistoryRow, type HistorySource } from "../history";
import { fmtTime, startOfDay, zoneLabel } from "../time";
import type { Ctx } from "./context";
import { closeReasonWord, sideWord } from "./labels";

const PAGE_SIZE = 20;
const PERIODS: [string, string][] = [["today", "Today"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["all", "All time"]];

export function historyView(ctx: Ctx, source: HistorySource = new TradesAndSessionLedger(ctx.clients, ctx.store)): HTMLElement {
  const { store } = ctx;
  let rows: HistoryRow[] = [];
  let page = 0;
  let loading = 0;

  const period = h("select", { testid: "history-period", "aria-label": "Period" },
    ...PERIODS.map(([v, label]) => h("option", { value: v }, label)));
  period.value = "all";
  const exportBtn = h("button", { type: "button", class: "btn btn-sm", testid: "history-export" }, "Export CSV");
  const prev = h("button", { type: "button", class: "btn btn-sm", testid: "history-prev" }, "Newer");
  const next = h("button", { type: "button", class: "btn btn-sm", testid: "history-next" }, "Older");
  const pageLabel = h("span", { class: "muted", testid: "history-page" }, "");
  const status = h("span", { class: "muted", testid: "history-status", role: "status" }, "");
  const total = (label: string, testid: string): [HTMLElement, HTMLElement] => {
    const v = h("span", { class: "num", testid }, "—");
    return [h("span", { class: "total" }, h("span", { class: "total-label" }, label), v), v];
  };
  const [tDep, deposits] = total("Deposits", "history-total-deposits");
  const [tTrade, trading] = total("Trading P&L", "history-total-trading");
  const [tOther, other] = total("Other", "history-total-other");
  const [tNet, net] = total("Net", "history-total-net");
  const body = h("tbody", { testid: "history-body" });

  const fromMs = (): number | null => {
    const now = Date.now();
    switch (period.value) {
      case "today": return startOfDay(now);
      case "7d": return now - 7 * 86_400_000;
      case "30d": return now - 30 * 86_400_000;
      default: return null;
    }
  };

  const px = (symbol: string, v: string): string => (v ? fmtPrice(v, store.bySymbol.get(symbol)?.priceDecimals ?? 2) : "");

  const row = (r: HistoryRow): HTMLTableRowElement => {
    const amount = h("td", { class: "num pnl", "data-label": "Amount (USD)", testid: r.kind === "trade" ? "trade-pnl" : "ledger-amount" }, fmtMoney(r.amount, true));
    const s = signOf(r.amount);
    amount.classList.toggle("up", s > 0);
    amount.classList.toggle("down", s < 0);
    const t = r.trade;
    return h("tr", {
      testid: r.kind === "trade" ? "trade-row" : "ledger-row", "data-kind": r.kind,
      "data-trade-id": t?.tradeId, "data-position-id": t?.positionId, "data-reason": t ? String(t.closeReason) : null,
    },
      h("td", { class: "num time", "data-label": "Time" }, fmtTime(r.time)),
      h("td", { class: "type", "data-label": "Type", testid: "history-type" }, r.type),
      h("td", { class: "sym", "data-label": "Symbol" }, r.symbol),
      h("td", { class: r.side === OrderSide.BUY ? "side-buy" : r.side === OrderSide.SELL ? "side-sell" : "", "data-label": "Side" }, r.side ? sideWord(r.side) : ""),
      h("td", { class: "num", "data-label": "Volume", testid: t ? "trade-volume" : null }, r.volume ? fmtVolume(r.volume) : ""),
      h("td", { class: "num", "data-label": "Open" }, px(r.symbol, r.openPrice)),
      h("td", { class: "num", "data-label": "Close", testid: t ? "trade-close-price" : null }, px(r.symbol, r.closePrice)),
      amount,
      h("td", { class: "reason", "data-label": "Reason", testid: t ? "trade-reason" : null, title: r.note }, t ? closeReasonWord(t.closeReason) : r.note ? "i" : ""));
  };

  const render = (): void => {
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const shown = rows.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    body.replaceChildren(...(shown.length ? shown.map(row)
      : [h("tr", { class: "empty", testid: "history-empty" }, h("td", { colspan: 9 }, "Nothing in this period"))]));
    setText(pageLabel, `Page ${page + 1} of ${pages}`);
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    const t = totalsOf(rows);
    setText(deposits, fmtMoney(t.deposits));
    setText(trading, fmtMoney(t.trading, true));
    setText(other, fmtMoney(t.other, true));
    setText(net, fmtMoney(t.net, true));
    for (const [el, v] of [[trading, t.trading], [other, t.other], [net, t.net]] as const) {
      el.classList.toggle("up", signOf(v) > 0);
      el.classList.toggle("down", signOf(v) < 0);
    }
  };

  const load = async (): Promise<void> => {
    const seq = ++loading;
    setText(status, "Loading…");
    try {
      const res = await source.query({ fromMs: fromMs() });
      if (seq !== loading) return;
      rows = res.rows;
      setText(status, res.complete ? "" : "Older history not loaded");
      render();
    } catch (e) {
      if (seq === loading) setText(status, `History unavailable: ${describeError(e)}`);
    }
  };

  period.addEventListener("change", () => {
    page = 0;
    void load();
  });
  prev.addEventListener("click", () => {
    page -= 1;
    render();
  });
  next.addEventListener("click", () => {
    page += 1;
    render();
  });
  exportBtn.addEventListener("click", async () => {
    await load();
    const head = ["Time", "Time zone", "Type", "Symbol", "Side", "Volume", "Open price", "Close price", "Amount (USD)", "Balance after (USD)", "Reason"];
    const zone = zoneLabel();
    const lines = rows.map((r) => [
      r.time === null ? "" : fmtTime(r.time), zone, r.type, r.symbol, r.side ? sideWord(r.side) : "", r.volume,
      r.openPrice, r.closePrice, r.amount.toFixed(2), r.balanceAfter, r.trade ? closeReasonWord(r.trade.closeReason) : r.note,
    ]);
    download(`exness-history-${period.value}.csv`, toCsv([head, ...lines]));
  });

  store.on("trades", () => void load());
  store.on("ledger", () => void load());
  store.on("account", () => {
    // The not-itemised remainder follows the balance.
    if (period.value === "all") void load();
  });
  void load();

  const heads: [string, boolean][] = [["Time", true], ["Type", false], ["Symbol", false], ["Side", false], ["Volume", true],
    ["Open", true], ["Close", true], ["Amount (USD)", true], ["Reason", false]];
  return h("div", { class: "history" },
    h("div", { class: "history-bar" }, period, h("div", { class: "totals", testid: "history-totals" }, tDep, tTrade, tOther, tNet), exportBtn),
    h("div", { class: "pane-scroll scroll" },
      h("table", { class: "grid-table cards" },
        h("thead", {}, h("tr", {}, heads.map(([t, num]) => h("th", { class: num ? "num" : "" }, t)))), body)),
    h("div", { class: "pager" }, prev, pageLabel, next, status));
}
