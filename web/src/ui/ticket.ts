// Order ticket: BUY/SELL, market or pending (limit/stop) at a price, size as volume or as
// margin + leverage, optional SL/TP; the required margin (and the spread the engine deducts at
// once) is shown before sending, with the account type's commission; an optional trailing stop.
// Unless one-click trading is switched on, the trader confirms side, volume and price first.
// Trading is paused while the symbol's price is stale or its market is closed (with the time it
// opens).
import type { Instrument } from "../../../gen/ts/exness/market/v1/market_pb";
import { OrderSide, OrderType } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { Decimal, dec, fmtMoney, fmtPrice, fmtVolume, isPositiveDecimal } from "../decimal";
import { h, setText } from "../dom";
import { marketState } from "../sessions";
import { fmtTime, zoneLabel } from "../time";
import { effectiveLeverage, levelProblem, liveAccount, requiredMargin, spreadCost, volumeForMargin } from "../trading";
import type { Ctx } from "./context";
import { confirmDialog } from "./dialogs";

const LEVERAGES = [1, 2, 5, 10, 20, 50, 100, 200, 400, 500, 1000, 2000];

export function ticketPanel(ctx: Ctx): HTMLElement {
  const { store } = ctx;
  let side: OrderSide = OrderSide.BUY;
  let sizeMode: "volume" | "margin" = "volume";
  let busy = false;

  const sellBtn = h("button", { type: "button", class: "side-btn sell", testid: "ticket-side-sell", "aria-pressed": "false" },
    h("span", { class: "side-label" }, "SELL"), h("span", { class: "side-price num", testid: "ticket-bid" }, "—"));
  const buyBtn = h("button", { type: "button", class: "side-btn buy", testid: "ticket-side-buy", "aria-pressed": "true" },
    h("span", { class: "side-label" }, "BUY"), h("span", { class: "side-price num", testid: "ticket-ask" }, "—"));
  const spread = h("span", { class: "spread", testid: "ticket-spread" }, "");

  const typeSel = h("select", { id: "ticket-type", testid: "ticket-type" },
    h("option", { value: String(OrderType.MARKET) }, "Market"),
    h("option", { value: String(OrderType.LIMIT) }, "Limit"),
    h("option", { value: String(OrderType.STOP) }, "Stop"));
  const price = h("input", { id: "ticket-price", testid: "ticket-price", inputmode: "decimal", autocomplete: "off", disabled: true, placeholder: "Market" });

  const modeVolume = h("input", { type: "radio", name: "ticket-size", id: "ticket-mode-volume", value: "volume", checked: true, testid: "ticket-mode-volume" });
  const modeMargin = h("input", { type: "radio", name: "ticket-size", id: "ticket-mode-margin", value: "margin", testid: "ticket-mode-margin" });
  const volume = h("input", { id: "ticket-volume", testid: "ticket-volume", inputmode: "decimal", autocomplete: "off" });
  const volumeHint = h("p", { class: "field-hint", testid: "ticket-volume-hint" }, "");
  const margin = h("input", { id: "ticket-margin", testid: "ticket-margin", inputmode: "decimal", autocomplete: "off", placeholder: "USD" });
  const leverage = h("select", { id: "ticket-leverage", testid: "ticket-leverage" });
  const sl = h("input", { id: "ticket-sl", testid: "ticket-sl", inputmode: "decimal", autocomplete: "off", placeholder: "Optional" });
  const tp = h("input", { id: "ticket-tp", testid: "ticket-tp", inputmode: "decimal", autocomplete: "off", placeholder: "Optional" });
  const trailing = h("input", { id: "ticket-trailing", testid: "ticket-trailing", inputmode: "decimal", autocomplete: "off", placeholder: "Optional distance" });
  const commissionEl = h("dd", { class: "num", testid: "ticket-commission" }, "—");

  const reqMargin = h("dd", { class: "num", testid: "ticket-required-margin" }, "—");
  const spreadCostEl = h("dd", { class: "num", testid: "ticket-spread-cost" }, "—");
  const needed = h("dd", { class: "num", testid: "ticket-margin-needed" }, "—");
  const staleNote = h("div", { class: "stale-note", role: "status", testid: "ticket-stale", hidden: true });
  const oneClick = h("input", { type: "checkbox", id: "ticket-one-click", testid: "one-click" });
  oneClick.checked = ctx.settings.current.oneClick;
  oneClick.addEventListener("change", () => ctx.settings.update({ oneClick: oneClick.checked }));
  const derivedVol = h("dd", { class: "num", testid: "ticket-derived-volume" }, "—");
  const freeMargin = h("dd", { class: "num", testid: "ticket-free-margin" }, "—");
  const levShown = h("dd", { class: "num", testid: "ticket-effective-leverage" }, "—");
  const error = h("div", { class: "form-error", role: "alert", testid: "ticket-error" });
  const message = h("div", { class: "form-ok", role: "status", testid: "ticket-message" });
  const submit = h("button", { type: "submit", class: "btn btn-block btn-buy", testid: "ticket-submit" }, "Buy");
  const symbolTitle = h("span", { class: "ticket-symbol", testid: "ticket-symbol" }, "");

  const volumeRow = h("div", { class: "field" }, h("label", { for: "ticket-volume" }, "Volume (lots)"), volume, volumeHint);
  const marginRow = h("div", { class: "field", hidden: true }, h("label", { for: "ticket-margin" }, "Margin (USD)"), margin);

  const inst = (): Instrument | undefined => store.bySymbol.get(store.selected);
  const orderType = (): OrderType => Number(typeSel.value) as OrderType;
  const askedLeverage = (): number | null => (Number(leverage.value) > 0 ? Number(leverage.value) : null);

  const setSide = (s: OrderSide): void => {
    side = s;
    buyBtn.setAttribute("aria-pressed", String(s === OrderSide.BUY));
    sellBtn.setAttribute("aria-pressed", String(s === OrderSide.SELL));
    recompute();
  };
  buyBtn.addEventListener("click", () => setSide(OrderSide.BUY));
  sellBtn.addEventListener("click", () => setSide(OrderSide.SELL));

  const setSizeMode = (m: "volume" | "margin"): void => {
    sizeMode = m;
    volumeRow.hidden = m !== "volume";
    marginRow.hidden = m !== "margin";
    recompute();
  };
  modeVolume.addEventListener("change", () => setSizeMode("volume"));
  modeMargin.addEventListener("change", () => setSizeMode("margin"));
  typeSel.addEventListener("change", () => {
    const market = orderType() === OrderType.MARKET;
    price.disabled = market;
    price.placeholder = market ? "Market" : "Trigger price";
    if (market) price.value = "";
    else if (!price.value) {
      const q = store.quotes.get(store.selected)?.quote;
      const i = inst();
      if (q && i) price.value = dec(side === OrderSide.BUY ? q.ask : q.bid)?.toFixed(i.priceDecimals) ?? "";
    }
    recompute();
  });
  for (const el of [price, volume, margin, sl, tp, trailing]) el.addEventListener("input", () => recompute());
  leverage.addEventListener("change", () => recompute());

  /** The price the order would execute at: the quote for market orders, else the trigger. */
  const execPrice = (): Decimal | null => {
    if (orderType() !== OrderType.MARKET) return isPositiveDecimal(price.value) ? dec(price.value) : null;
    const q = store.quotes.get(store.selected)?.quote;
    if (!q) return null;
    return dec(side === OrderSide.BUY ? q.ask : q.bid);
  };

  /** Volume the order is for, from the volume field or derived from margin and leverage. */
  const orderVolume = (i: Instrument, p: Decimal | null, lev: number): Decimal | null => {
    if (sizeMode === "volume") return isPositiveDecimal(volume.value) ? dec(volume.value) : null;
    if (!p || !isPositiveDecimal(margin.value)) return null;
    return volumeForMargin(i, dec(margin.value)!, p, lev);
  };

  function recompute(): void {
    const i = inst();
    if (!i) return;
    const q = store.quotes.get(i.symbol)?.quote;
    setText(sellBtn.querySelector(".side-price")!, q ? fmtPrice(q.bid, i.priceDecimals) : "—");
    setText(buyBtn.querySelector(".side-price")!, q ? fmtPrice(q.ask, i.priceDecimals) : "—");
    if (q) {
      const sp = dec(q.ask)!.minus(dec(q.bid)!);
      setText(spread, `spread ${sp.toFixed(i.priceDecimals)}`);
    }
    const lev = effectiveLeverage(i, askedLeverage(), store.account);
    setText(levShown, `1:${lev}`);
    const p = execPrice();
    const vol = orderVolume(i, p, lev);
    setText(derivedVol, vol ? fmtVolume(vol) : "—");
    const need = vol && p ? requiredMargin(i, vol, p, lev) : null;
    setText(reqMargin, need ? `${fmtMoney(need)} USD` : "—");
    // The engine fills only if free margin covers the margin plus the spread the position
    // starts with (volume x contract size x (ask - bid)).
    const cost = vol && q ? spreadCost(i, vol, q) : null;
    setText(spreadCostEl, cost ? `${fmtMoney(cost)} USD` : "—");
    const total = need && cost ? need.plus(cost) : null;
    setText(needed, total ? `${fmtMoney(total)} USD` : "—");
    const live = liveAccount(store, store.account);
    setText(freeMargin, live.freeMargin ? `${fmtMoney(live.freeMargin)} USD` : "—");
    const short = !!(total && live.freeMargin && total.gt(live.freeMargin));
    reqMargin.classList.toggle("down", short);
    needed.classList.toggle("down", short);
    const commission = vol ? openCommission(i.symbol, vol) : null;
    setText(commissionEl, commission ? `${fmtMoney(commission)} USD` : "—");
    const why = pauseReason(i);
    const paused = why !== null;
    staleNote.hidden = !paused;
    setText(staleNote, why ?? "");
    form.dataset.market = marketState(i, store.now).open ? "open" : "closed";
    buyBtn.disabled = paused;
    sellBtn.disabled = paused;
    form.dataset.paused = String(paused);
    const sideWord = side === OrderSide.BUY ? "Buy" : "Sell";
    const typeWord = orderType() === OrderType.LIMIT ? " limit" : orderType() === OrderType.STOP ? " stop" : "";
    setText(submit, busy ? "Sending…" : `${sideWord}${typeWord} ${vol ? fmtVolume(vol) + " " : ""}${i.symbol}`);
    submit.disabled = busy || paused;
    submit.classList.toggle("btn-buy", side === OrderSide.BUY);
    submit.classList.toggle("btn-sell", side === OrderSide.SELL);
  }

  /** Why the ticket cannot send now (closed market, stale price), or null. */
  function pauseReason(i: Instrument): string | null {
    const m = marketState(i, store.now);
    if (!m.open) {
      const when = m.opensAtMs === null ? "" : ` It opens ${fmtTime(m.opensAtMs).slice(0, 16)} (${zoneLabel(m.opensAtMs).split(" ")[0]}).`;
      return `The ${i.symbol} market is closed.${when}`;
    }
    const f = store.freshness(i.symbol);
    return f.state === "fresh" ? null : f.reason;
  }

  /** Commission of the open side at the account type's rate per lot; null when none. */
  function openCommission(symbol: string, vol: Decimal): Decimal | null {
    const t = store.accountTypes.find((x) => x.name === store.accountType);
    const rate = dec(t?.terms.find((x) => x.symbol === symbol)?.commissionPerLot);
    return rate && !rate.isZero() ? vol.times(rate) : null;
  }

  const resetForSymbol = (): void => {
    const i = inst();
    if (!i) return;
    setText(symbolTitle, `${i.symbol}`);
    volume.value = i.volumeMin;
    setText(volumeHint, `min ${i.volumeMin} · step ${i.volumeStep} · max ${i.volumeMax}`);
    price.value = "";
    if (orderType() !== OrderType.MARKET) typeSel.dispatchEvent(new Event("change"));
    sl.value = "";
    tp.value = "";
    trailing.value = "";
    error.textContent = "";
    message.textContent = "";
    fillLeverage();
    recompute();
  };

  function fillLeverage(): void {
    const i = inst();
    if (!i) return;
    const current = leverage.value;
    const acct = store.account?.leverage;
    const max = i.maxLeverage || 2000;
    const opts = [h("option", { value: "0" }, acct ? `Acct 1:${Math.min(acct, max)}` : "Account")];
    for (const l of LEVERAGES) if (l <= max) opts.push(h("option", { value: String(l) }, `1:${l}`));
    leverage.replaceChildren(...opts);
    leverage.value = [...leverage.options].some((o) => o.value === current) ? current : "0";
  }

  /** The first problem with the form, naming its field, or null. */
  const validate = (i: Instrument): [HTMLInputElement, string] | null => {
    if (orderType() !== OrderType.MARKET && !isPositiveDecimal(price.value)) return [price, "Price: enter the trigger price."];
    if (sizeMode === "volume" && !isPositiveDecimal(volume.value)) return [volume, `Volume: enter lots, e.g. ${i.volumeMin}.`];
    if (sizeMode === "margin" && !isPositiveDecimal(margin.value)) return [margin, "Margin: enter an amount in USD."];
    if (sl.value.trim() && !isPositiveDecimal(sl.value)) return [sl, "Stop loss must be a price, e.g. " + fmtPrice(store.quotes.get(i.symbol)?.quote.bid ?? "100", i.priceDecimals) + "."];
    if (tp.value.trim() && !isPositiveDecimal(tp.value)) return [tp, "Take profit must be a price."];
    if (trailing.value.trim() && !isPositiveDecimal(trailing.value)) return [trailing, "Trailing stop: enter a distance in price units, e.g. 50."];
    if (sizeMode === "margin") {
      const v = orderVolume(i, execPrice(), effectiveLeverage(i, askedLeverage(), store.account));
      const min = dec(i.volumeMin);
      if (!v || (min && v.lt(min))) return [margin, `Margin: buys less than the minimum volume (${i.volumeMin} lots).`];
    }
    const q = store.quotes.get(i.symbol)?.quote;
    if (q) {
      const pending = orderType() !== OrderType.MARKET ? dec(price.value) : null;
      for (const [input, kind] of [[sl, "sl"], [tp, "tp"]] as const) {
        const level = dec(input.value);
        if (!level) continue;
        const problem = levelProblem(side, kind, level, q, pending, i.priceDecimals);
        if (problem) return [input, problem];
      }
    }
    return null;
  };

  const form = h("form", { class: "ticket-form", testid: "ticket", novalidate: true },
    h("div", { class: "side-switch", role: "group", "aria-label": "Side" }, sellBtn, spread, buyBtn),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "ticket-type" }, "Order type"), typeSel),
      h("div", { class: "field" }, h("label", { for: "ticket-price" }, "Price"), price)),
    h("fieldset", { class: "size-mode" },
      h("legend", {}, "Size by"),
      h("label", { for: "ticket-mode-volume", class: "radio" }, modeVolume, "Volume"),
      h("label", { for: "ticket-mode-margin", class: "radio" }, modeMargin, "Margin")),
    h("div", { class: "field-row" }, volumeRow, marginRow,
      h("div", { class: "field" }, h("label", { for: "ticket-leverage" }, "Leverage"), leverage)),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "ticket-sl" }, "Stop loss"), sl),
      h("div", { class: "field" }, h("label", { for: "ticket-tp" }, "Take profit"), tp)),
    h("div", { class: "field" }, h("label", { for: "ticket-trailing" }, "Trailing stop (distance)"), trailing),
    h("dl", { class: "ticket-summary" },
      h("dt", {}, "Volume"), derivedVol,
      h("dt", {}, "Leverage"), levShown,
      h("dt", {}, "Required margin"), reqMargin,
      h("dt", {}, "Spread cost"), spreadCostEl,
      h("dt", {}, "Margin + spread"), needed,
      h("dt", {}, "Commission"), commissionEl,
      h("dt", {}, "Free margin"), freeMargin),
    staleNote, error, message, submit,
    h("label", { class: "check", for: "ticket-one-click" }, oneClick, "One-click trading (no confirmation)"));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const i = inst();
    if (!i || busy) return;
    error.textContent = "";
    message.textContent = "";
    for (const el of [price, volume, margin, sl, tp, trailing]) el.removeAttribute("aria-invalid");
    const problem = validate(i);
    if (problem) {
      const [input, text] = problem;
      error.textContent = text;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const why = pauseReason(i);
    if (why) {
      error.textContent = why;
      return;
    }
    const type = orderType();
    if (!ctx.settings.current.oneClick && !(await confirmOrder(i, type))) return;
    busy = true;
    submit.disabled = true;
    recompute();
    try {
      const res = await ctx.clients.trading.placeOrder({
        symbol: i.symbol,
        side,
        type,
        volume: sizeMode === "volume" ? volume.value.trim() : "",
        margin: sizeMode === "margin" ? margin.value.trim() : "",
        leverage: askedLeverage() ?? 0,
        price: type === OrderType.MARKET ? "" : price.value.trim(),
        stopLoss: sl.value.trim(),
        takeProfit: tp.value.trim(),
        trailingStop: trailing.value.trim(),
        clientOrderId: `web-${crypto.randomUUID()}`,
        accountId: store.accountId,
      });
      store.upsertOrder(res.order);
      store.upsertPosition(res.position);
      const o = res.order;
      const word = side === OrderSide.BUY ? "Bought" : "Sold";
      if (res.position) {
        message.textContent = `${word} ${fmtVolume(res.position.volume)} ${i.symbol} at ${fmtPrice(res.position.openPrice, i.priceDecimals)}`;
      } else if (o) {
        message.textContent = `${side === OrderSide.BUY ? "Buy" : "Sell"} ${type === OrderType.LIMIT ? "limit" : "stop"} ${fmtVolume(o.volume)} ${i.symbol} at ${fmtPrice(o.price, i.priceDecimals)} placed`;
      }
      ctx.notify(message.textContent, "success");
    } catch (e) {
      error.textContent = describeError(e);
    } finally {
      busy = false;
      submit.disabled = false;
      recompute();
    }
  });

  store.on("selected", resetForSymbol);
  store.on("instruments", resetForSymbol);
  store.on("quotes", recompute);
  store.on("account", () => {
    fillLeverage();
    recompute();
  });
  store.on("positions", recompute);
  store.on("accounts", recompute);
  store.on("clock", recompute);
  store.on("connection", recompute);

  /** Asks the trader to confirm side, volume and price; resolves false when cancelled. */
  function confirmOrder(i: Instrument, type: OrderType): Promise<boolean> {
    const lev = effectiveLeverage(i, askedLeverage(), store.account);
    const p = execPrice();
    const vol = orderVolume(i, p, lev);
    const sideText = side === OrderSide.BUY ? "Buy" : "Sell";
    const typeText = type === OrderType.LIMIT ? "limit" : type === OrderType.STOP ? "stop" : "at market";
    const priceText = p ? fmtPrice(p, i.priceDecimals) : "—";
    const lines: [string, string][] = [
      ["Side", `${sideText} ${typeText}`],
      ["Volume", `${vol ? fmtVolume(vol) : "—"} lots ${i.symbol}`],
      [type === OrderType.MARKET ? "Price now (fills at the market)" : "Trigger price", priceText],
      ["Stop loss", sl.value.trim() ? fmtPrice(sl.value, i.priceDecimals) : "none"],
      ["Take profit", tp.value.trim() ? fmtPrice(tp.value, i.priceDecimals) : "none"],
      ["Trailing stop", trailing.value.trim() ? fmtPrice(trailing.value, i.priceDecimals) : "none"],
      ["Margin + spread", needed.textContent ?? "—"],
    ];
    return confirmDialog(`${sideText} ${vol ? fmtVolume(vol) : ""} ${i.symbol}?`, "confirm-dialog", lines, `Confirm ${sideText.toLowerCase()}`);
  }

  const panel = h("section", { class: "panel ticket", "aria-label": "Order ticket", "data-pane": "trade" },
    h("header", { class: "panel-head" }, h("h2", {}, "New order"), symbolTitle),
    h("div", { class: "panel-body" }, form));
  resetForSymbol();
  return panel;
}
