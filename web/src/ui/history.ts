// History of the account on screen: balance operations (with the running balance) or closed
// trades (with commission and swap), a period filter (today, 7 or 30 days, all, or custom
// dates in the chosen time zone), totals per kind for the whole period, pages of PAGE_SIZE
// rows from the server (Older follows its page token) and CSV export of the whole period.
import { LedgerEntryKind, OrderSide, type LedgerEntry, type Trade } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { download, toCsv } from "../csv";
import { dec, fmtMoney, fmtPrice, fmtVolume, signOf } from "../decimal";
import { h, setText } from "../dom";
import {
  entryTimeMs, HistoryApi, ledgerKindWord, ledgerTotals, TOTAL_KINDS, tradeTimeMs, tradeTotals, type Period,
} from "../history";
import { dayOf, dayStartMs, fmtTime, startOfDay, zoneLabel } from "../time";
import type { Ctx } from "./context";
import { closeReasonWord, sideWord } from "./labels";

const PAGE_SIZE = 20;
const DAY_MS = 86_400_000;
const PERIODS: [string, string][] = [
  ["today", "Today"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["all", "All time"], ["custom", "Custom dates"],
];
type Mode = "balance" | "trades";

export function historyView(ctx: Ctx, api = new HistoryApi(ctx.clients)): HTMLElement {
  const { store } = ctx;
  let mode: Mode = "balance";
  // Page tokens of the pages shown so far: tokens[i] opens page i.
  let tokens: string[] = [""];
  let page = 0;
  let nextToken = "";
  let loading = 0;

  const modeBtn = (m: Mode, label: string): HTMLButtonElement => {
    const b = h("button", { type: "button", class: "seg", testid: `history-mode-${m}`, "aria-pressed": String(m === mode) }, label);
    b.addEventListener("click", () => {
      if (mode === m) return;
      mode = m;
      for (const [x, btn] of modeButtons) btn.setAttribute("aria-pressed", String(x === mode));
      restart();
    });
    return b;
  };
  const modeButtons: [Mode, HTMLButtonElement][] = [["balance", modeBtn("balance", "Balance")], ["trades", modeBtn("trades", "Trades")]];

  const period = h("select", { testid: "history-period", "aria-label": "Period" },
    ...PERIODS.map(([v, label]) => h("option", { value: v }, label)));
  period.value = "all";
  const from = h("input", { type: "date", testid: "history-from", "aria-label": "From (first day)" });
  const to = h("input", { type: "date", testid: "history-to", "aria-label": "To (last day)" });
  const custom = h("div", { class: "history-custom", hidden: true }, from, h("span", { class: "muted" }, "–"), to);
  const exportBtn = h("button", { type: "button", class: "btn btn-sm", testid: "history-export" }, "Export CSV");
  const prev = h("button", { type: "button", class: "btn btn-sm", testid: "history-prev" }, "Newer");
  const next = h("button", { type: "button", class: "btn btn-sm", testid: "history-next" }, "Older");
  const pageLabel = h("span", { class: "muted", testid: "history-page" }, "");
  const status = h("span", { class: "muted", testid: "history-status", role: "status" }, "");
  const totals = h("div", { class: "totals", testid: "history-totals" });
  const head = h("thead");
  const body = h("tbody", { testid: "history-body" });

  /** The chosen window; null while custom dates are incomplete or reversed. */
  const chosen = (): Period | null => {
    const now = Date.now();
    switch (period.value) {
      case "today": return { startMs: startOfDay(now), endMs: null };
      case "7d": return { startMs: now - 7 * DAY_MS, endMs: null };
      case "30d": return { startMs: now - 30 * DAY_MS, endMs: null };
      case "custom": {
        const start = dayStartMs(from.value);
        const last = dayStartMs(to.value);
        if (start === null || last === null || last < start) return null;
        // The last day counts whole: up to the start of the day after it.
        const end = dayStartMs(dayOf(last + DAY_MS + DAY_MS / 2));
        return { startMs: start, endMs: end };
      }
      default: return { startMs: null, endMs: null };
    }
  };

  const px = (symbol: string, v: string): string => (v ? fmtPrice(v, store.bySymbol.get(symbol)?.priceDecimals ?? 2) : "");

  const money = (v: string, testid: string, label: string): HTMLTableCellElement => {
    const td = h("td", { class: "num pnl", "data-label": label, testid }, fmtMoney(v || "0", true));
    td.classList.toggle("up", signOf(v) > 0);
    td.classList.toggle("down", signOf(v) < 0);
    return td;
  };

  const entryRow = (e: LedgerEntry): HTMLTableRowElement =>
    h("tr", { testid: "ledger-row", "data-kind": LedgerEntryKind[e.kind] ?? String(e.kind), "data-entry-id": e.entryId },
      h("td", { class: "num time", "data-label": "Time" }, fmtTime(entryTimeMs(e))),
      h("td", { class: "type", "data-label": "Type", testid: "history-type" }, ledgerKindWord(e.kind)),
      money(e.amount, "ledger-amount", "Amount (USD)"),
      h("td", { class: "num", "data-label": "Balance (USD)", testid: "ledger-balance" }, fmtMoney(e.balanceAfter)),
      h("td", { class: "muted", "data-label": "Reference", testid: "ledger-reference" }, referenceText(e)));

  const tradeRow = (t: Trade): HTMLTableRowElement =>
    h("tr", { testid: "trade-row", "data-trade-id": t.tradeId, "data-position-id": t.positionId, "data-reason": String(t.closeReason) },
      h("td", { class: "num time", "data-label": "Closed" }, fmtTime(tradeTimeMs(t))),
      h("td", { class: "sym", "data-label": "Symbol" }, t.symbol),
      h("td", { class: t.side === OrderSide.BUY ? "side-buy" : "side-sell", "data-label": "Side" }, sideWord(t.side)),
      h("td", { class: "num", "data-label": "Volume", testid: "trade-volume" }, fmtVolume(t.volume)),
      h("td", { class: "num", "data-label": "Open" }, px(t.symbol, t.openPrice)),
      h("td", { class: "num", "data-label": "Close", testid: "trade-close-price" }, px(t.symbol, t.closePrice)),
      money(t.commission, "trade-commission", "Commission"),
      money(t.swap, "trade-swap", "Swap"),
      money(t.realizedPnl, "trade-pnl", "P&L (USD)"),
      h("td", { class: "reason", "data-label": "Reason", testid: "trade-reason", title: t.closeNote }, closeReasonWord(t.closeReason)));

  const heads: Record<Mode, [string, boolean][]> = {
    balance: [["Time", true], ["Type", false], ["Amount (USD)", true], ["Balance (USD)", true], ["Reference", false]],
    trades: [["Closed", true], ["Symbol", false], ["Side", false], ["Volume", true], ["Open", true], ["Close", true],
      ["Commission", true], ["Swap", true], ["P&L (USD)", true], ["Reason", false]],
  };

  const total = (label: string, value: string, testid: string, signed = true): HTMLElement => {
    const v = h("span", { class: "num", testid }, fmtMoney(value, signed));
    v.classList.toggle("up", signed && signOf(value) > 0);
    v.classList.toggle("down", signed && signOf(value) < 0);
    return h("span", { class: "total" }, h("span", { class: "total-label" }, label), v);
  };

  const showPage = (items: (LedgerEntry | Trade)[]): void => {
    head.replaceChildren(h("tr", {}, heads[mode].map(([t, num]) => h("th", { class: num ? "num" : "" }, t))));
    const rows = mode === "balance" ? (items as LedgerEntry[]).map(entryRow) : (items as Trade[]).map(tradeRow);
    body.replaceChildren(...(rows.length ? rows
      : [h("tr", { class: "empty", testid: "history-empty" }, h("td", { colspan: heads[mode].length }, "Nothing in this period"))]));
    setText(pageLabel, `Page ${page + 1}`);
    prev.disabled = page === 0;
    next.disabled = !nextToken;
  };

  const showTotals = (p: Period, accountId: string, seq: number): void => {
    const done = (els: HTMLElement[]): void => {
      if (seq === loading) totals.replaceChildren(...els);
    };
    if (mode === "balance") {
      void api.allTransactions(accountId, p).then((all) => {
        const t = ledgerTotals(all);
        done([
          ...TOTAL_KINDS.map((k) => total(ledgerKindWord(k), (t.byKind.get(k) ?? dec(0)!).toString(), `history-total-${LedgerEntryKind[k].toLowerCase()}`)),
          total("Net", t.net.toString(), "history-total-net"),
        ]);
      }, () => done([]));
    } else {
      void api.allTrades(accountId, p).then((all) => {
        const t = tradeTotals(all);
        done([
          h("span", { class: "total" }, h("span", { class: "total-label" }, "Trades"), h("span", { class: "num", testid: "history-total-count" }, String(t.count))),
          total("P&L", t.pnl.toString(), "history-total-pnl"),
          total("Commission", t.commission.toString(), "history-total-commission"),
          total("Swap", t.swap.toString(), "history-total-swap"),
          total("Net", t.net.toString(), "history-total-net"),
        ]);
      }, () => done([]));
    }
  };

  /** Shows page `page` of the current mode and period (and, on request, its totals). */
  const load = async (withTotals: boolean): Promise<void> => {
    const seq = ++loading;
    const p = chosen();
    if (!p) {
      setText(status, "Choose the first and last day.");
      return;
    }
    const accountId = store.accountId;
    setText(status, "Loading…");
    try {
      const res = mode === "balance"
        ? await api.transactions(accountId, p, PAGE_SIZE, tokens[page])
        : await api.trades(accountId, p, PAGE_SIZE, tokens[page]);
      if (seq !== loading) return;
      nextToken = res.nextToken;
      tokens[page + 1] = res.nextToken;
      setText(status, "");
      showPage(res.items);
      if (withTotals) showTotals(p, accountId, seq);
    } catch (e) {
      if (seq === loading) setText(status, `History unavailable: ${describeError(e)}`);
    }
  };

  /** From the newest page again, with fresh totals. */
  const restart = (): void => {
    tokens = [""];
    page = 0;
    totals.replaceChildren();
    void load(true);
  };

  period.addEventListener("change", () => {
    custom.hidden = period.value !== "custom";
    if (period.value === "custom" && !from.value) {
      to.value = dayOf(Date.now());
      from.value = dayOf(Date.now() - 6 * DAY_MS);
    }
    restart();
  });
  from.addEventListener("change", restart);
  to.addEventListener("change", restart);
  prev.addEventListener("click", () => {
    page = Math.max(0, page - 1);
    void load(false);
  });
  next.addEventListener("click", () => {
    if (!nextToken) return;
    page += 1;
    void load(false);
  });

  exportBtn.addEventListener("click", async () => {
    const p = chosen();
    if (!p) return;
    const zone = zoneLabel();
    exportBtn.disabled = true;
    try {
      let table: string[][];
      if (mode === "balance") {
        const all = await api.allTransactions(store.accountId, p);
        table = [["Time", "Time zone", "Type", "Amount (USD)", "Balance after (USD)", "Reference"],
          ...all.map((e) => [fmtTime(entryTimeMs(e)), zone, ledgerKindWord(e.kind), e.amount, e.balanceAfter, e.referenceId])];
      } else {
        const all = await api.allTrades(store.accountId, p);
        table = [["Close time", "Time zone", "Symbol", "Side", "Volume", "Open price", "Close price", "Commission (USD)", "Swap (USD)", "P&L (USD)", "Reason"],
          ...all.map((t) => [fmtTime(tradeTimeMs(t)), zone, t.symbol, sideWord(t.side), t.volume, t.openPrice, t.closePrice,
            t.commission || "0.00", t.swap || "0.00", t.realizedPnl, closeReasonWord(t.closeReason)])];
      }
      download(`exness-${mode === "balance" ? "transactions" : "trades"}-${store.accountId || "account"}-${period.value}.csv`, toCsv(table));
    } catch (e) {
      ctx.notify(`Export failed: ${describeError(e)}`, "error");
    } finally {
      exportBtn.disabled = false;
    }
  });

  // New operations arrive newest first: the first page and the totals follow them. Bursts (a
  // stop-out closes several positions) are read once.
  let refresh: number | undefined;
  const refreshSoon = (): void => {
    window.clearTimeout(refresh);
    refresh = window.setTimeout(() => {
      if (page === 0) void load(true);
      else showTotals(chosen() ?? { startMs: null, endMs: null }, store.accountId, loading);
    }, 150);
  };
  store.on("trades", refreshSoon);
  store.on("ledger", refreshSoon);
  store.on("accountSwitch", restart);
  ctx.settings.onChange(restart);
  restart();

  return h("div", { class: "history" },
    h("div", { class: "history-bar" },
      h("div", { class: "seg-group", role: "group", "aria-label": "Show" }, modeButtons.map(([, b]) => b)),
      period, custom, exportBtn),
    totals,
    h("div", { class: "pane-scroll scroll" }, h("table", { class: "grid-table cards" }, head, body)),
    h("div", { class: "pager" }, prev, pageLabel, next, status));
}

/** What a balance operation refers to, in words: realised P&L books a trade, commission and
 * swaps a position. */
function referenceText(e: LedgerEntry): string {
  if (!e.referenceId) return "";
  switch (e.kind) {
    case LedgerEntryKind.REALIZED_PNL:
      return `Trade #${e.referenceId}`;
    case LedgerEntryKind.COMMISSION:
    case LedgerEntryKind.SWAP:
      return `Position #${e.referenceId}`;
    default:
      return `#${e.referenceId}`;
  }
}
