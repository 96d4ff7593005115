// The account bar: the account switcher; balance, equity, margin, free margin, margin level and
// floating P&L, live between StreamAccount events; deposit, withdraw, leverage, connection
// indicator and log out; plus the margin-call banner under it.
import { describeError } from "../api/errors";
import { dec, fmtMoney, isPositiveDecimal, signOf } from "../decimal";
import { h, setText } from "../dom";
import { timeZoneChoice, setTimeZone, zoneLabel } from "../time";
import { liveAccount } from "../trading";
import { accountSwitcher, LEVERAGES, maxLeverageOf } from "./accounts";
import type { Ctx } from "./context";
import { field, formDialog } from "./dialogs";
/** How long a MARGIN_CALL event keeps the banner up when the live level alone would not. */
const MARGIN_CALL_EVENT_MS = 5_000;

export function topBar(ctx: Ctx): { bar: HTMLElement; banner: HTMLElement } {
  const { store } = ctx;
  const metric = (label: string, testid: string): [HTMLElement, HTMLElement] => {
    const value = h("span", { class: "metric-value num", testid }, "—");
    return [h("div", { class: "metric" }, h("span", { class: "metric-label" }, label), value), value];
  };
  const [mBalance, balance] = metric("Balance", "account-balance");
  const [mEquity, equity] = metric("Equity", "account-equity");
  const [mMargin, margin] = metric("Margin", "account-margin");
  const [mFree, free] = metric("Free margin", "account-free-margin");
  const [mLevel, level] = metric("Margin level", "account-margin-level");
  const [mPnl, pnl] = metric("Floating P&L", "account-pnl");

  const leverage = h("select", { id: "account-leverage", testid: "account-leverage", "aria-label": "Account leverage" });
  // Only what the account type allows.
  const fillLeverage = (): void => {
    const max = maxLeverageOf(store);
    const current = store.account ? String(store.account.leverage) : leverage.value;
    const options = LEVERAGES.filter((l) => l <= max);
    if (store.account && !options.includes(store.account.leverage)) options.push(store.account.leverage);
    if (leverage.options.length === options.length && [...leverage.options].every((o, i) => o.value === String(options[i]))) return;
    leverage.replaceChildren(...options.sort((a, b) => a - b).map((l) => h("option", { value: String(l) }, `1:${l}`)));
    leverage.value = current;
  };
  fillLeverage();
  leverage.addEventListener("change", async () => {
    const wanted = Number(leverage.value);
    try {
      const res = await ctx.clients.trading.setLeverage({ leverage: wanted, accountId: store.accountId });
      store.setAccount(res.account);
      ctx.notify(`Account leverage set to 1:${wanted}`, "success");
    } catch (e) {
      ctx.notify(describeError(e), "error");
      if (store.account) leverage.value = String(store.account.leverage);
    }
  });

  const depositBtn = h("button", { type: "button", class: "btn btn-sm", testid: "deposit-open" }, "Deposit");
  depositBtn.addEventListener("click", () => {
    const amount = h("input", { inputmode: "decimal", autocomplete: "off", testid: "deposit-amount", value: "10000" });
    const dlg = formDialog("Deposit demo funds (USD)", "deposit-dialog",
      [field("deposit-amount", "Amount (USD)", amount, "Up to 1,000,000.00 per deposit, 2 decimals.")], "Deposit");
    amount.select();
    dlg.form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!isPositiveDecimal(amount.value) || (dec(amount.value)?.decimalPlaces() ?? 0) > 2) {
        dlg.error.textContent = "Enter an amount in USD, e.g. 10000 or 250.50.";
        return;
      }
      dlg.submit.disabled = true;
      try {
        const res = await ctx.clients.trading.deposit({ amount: amount.value.trim(), accountId: store.accountId });
        store.setAccount(res.account);
        store.addLedger(res.entry);
        ctx.notify(`Deposited ${fmtMoney(amount.value)} USD`, "success");
        dlg.close();
      } catch (e) {
        dlg.error.textContent = describeError(e);
        dlg.submit.disabled = false;
      }
    });
  });

  const withdrawBtn = h("button", { type: "button", class: "btn btn-sm", testid: "withdraw-open" }, "Withdraw");
  withdrawBtn.addEventListener("click", () => {
    const amount = h("input", { inputmode: "decimal", autocomplete: "off", testid: "withdraw-amount" });
    const free = liveAccount(store, store.account).freeMargin;
    const dlg = formDialog("Withdraw demo funds (USD)", "withdraw-dialog",
      [field("withdraw-amount", "Amount (USD)", amount,
        `At most the free margin${free ? `, now ${fmtMoney(free)} USD` : ""}; 2 decimals.`)], "Withdraw");
    amount.focus();
    dlg.form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!isPositiveDecimal(amount.value) || (dec(amount.value)?.decimalPlaces() ?? 0) > 2) {
        dlg.error.textContent = "Enter an amount in USD, e.g. 500 or 250.50.";
        return;
      }
      dlg.submit.disabled = true;
      try {
        const res = await ctx.clients.trading.withdraw({ amount: amount.value.trim(), accountId: store.accountId });
        store.setAccount(res.account);
        store.addLedger(res.entry);
        ctx.notify(`Withdrew ${fmtMoney(amount.value)} USD`, "success");
        dlg.close();
      } catch (e) {
        dlg.error.textContent = describeError(e);
        dlg.submit.disabled = false;
      }
    });
  });

  const connDot = h("span", { class: "conn-dot" });
  const connText = h("span", { class: "conn-text" }, "Connecting…");
  const conn = h("div", { class: "conn", testid: "conn-status", "data-state": "connecting", role: "status", "aria-live": "polite" }, connDot, connText);

  // Every time on screen follows this zone; the button says which one and switches it.
  const tzOffset = h("span", { class: "tz-offset" }, "");
  const tzName = h("span", { class: "tz-name" }, "");
  const tz = h("button", { type: "button", class: "btn btn-sm btn-ghost tz", testid: "tz-toggle", title: "Times are shown in this zone; click to switch between your browser's zone and UTC" }, tzOffset, tzName);
  const renderZone = (): void => {
    const [offset, ...name] = zoneLabel().split(" ");
    setText(tzOffset, offset);
    setText(tzName, name.length ? ` ${name.join(" ")}` : "");
  };
  renderZone();
  tz.addEventListener("click", () => {
    const next = timeZoneChoice() === "utc" ? "local" : "utc";
    setTimeZone(next);
    ctx.settings.update({ timeZone: next });
  });
  ctx.settings.onChange(() => {
    renderZone();
    store.emit("positions", "orders", "trades", "ledger");
  });

  const user = h("span", { class: "user", testid: "user-email" }, ctx.session.email ?? "");
  const logout = h("button", { type: "button", class: "btn btn-sm btn-ghost", testid: "logout" }, "Log out");
  logout.addEventListener("click", () => void ctx.session.logout());

  const bar = h("header", { class: "topbar", testid: "account-bar" },
    h("div", { class: "brand" }, h("span", { class: "brand-mark" }, "exness"), h("span", { class: "brand-sub" }, "terminal")),
    accountSwitcher(ctx),
    h("div", { class: "metrics" }, mBalance, mEquity, mMargin, mFree, mLevel, mPnl),
    h("div", { class: "account-actions" },
      depositBtn, withdrawBtn,
      h("label", { class: "inline-label", for: "account-leverage" }, "Leverage"), leverage,
      user, logout),
    conn, tz);

  const bannerText = h("span", { testid: "margin-call-text" }, "");
  const banner = h("div", { class: "margin-call", role: "alert", testid: "margin-call-warning", hidden: true },
    h("strong", {}, "Margin call"), bannerText);

  let bannerTimer: number | undefined;
  const render = (): void => {
    const a = store.account;
    const live = liveAccount(store, a);
    setText(balance, fmtMoney(live.balance));
    setText(equity, fmtMoney(live.equity));
    setText(margin, fmtMoney(live.margin));
    setText(free, fmtMoney(live.freeMargin));
    setText(level, live.marginLevel ? `${fmtMoney(live.marginLevel)}%` : "—");
    setText(pnl, fmtMoney(live.floatingPnl, true));
    const s = signOf(live.floatingPnl);
    pnl.classList.toggle("up", s > 0);
    pnl.classList.toggle("down", s < 0);
    level.classList.toggle("down", live.marginCall);
    fillLeverage();
    if (a && document.activeElement !== leverage) leverage.value = String(a.leverage);
    // The banner shows while the live level is at or below the call level; a MARGIN_CALL event
    // shows it at once even before the next quote. With no open position there is nothing to
    // call margin on: a stop-out that closed the last one ends the warning at once.
    const sinceEvent = store.marginCallAt === null ? Infinity : Date.now() - store.marginCallAt;
    const recentEvent = sinceEvent < MARGIN_CALL_EVENT_MS;
    const show = store.positions.size > 0 && (live.marginCall || recentEvent);
    banner.hidden = !show;
    // Quotes may pause (a closed market, a frozen feed): re-check when the event's window ends.
    if (recentEvent) {
      clearTimeout(bannerTimer);
      bannerTimer = window.setTimeout(render, MARGIN_CALL_EVENT_MS - sinceEvent + 50);
    }
    if (show && a) {
      setText(bannerText,
        ` Margin level ${live.marginLevel ? fmtMoney(live.marginLevel) + "%" : "—"} is at or below ${a.marginCallLevel || "60"}%. ` +
        `At ${a.stopOutLevel || "0"}% positions are closed automatically (stop out). Deposit funds or close positions.`);
    }
  };

  const renderConn = (): void => {
    const q = store.streams.quotes;
    const acc = store.streams.account;
    const states = [q, acc].filter((s) => s !== "stopped");
    // Live means both: the streams are up and every price is fresh.
    const stale = store.instruments.map((i) => i.symbol).filter((sym) => store.freshness(sym).state === "stale");
    let state = stale.length ? "stale" : "live";
    let text = stale.length ? `Live · ${stale.length} stale` : "Live";
    if (states.some((s) => s === "retrying")) {
      state = "down";
      text = "Reconnecting…";
    } else if (states.some((s) => s === "connecting") || states.length === 0) {
      state = "connecting";
      text = "Connecting…";
    }
    conn.dataset.state = state;
    conn.dataset.quotes = q;
    conn.dataset.account = acc;
    conn.dataset.stale = stale.join(" ");
    conn.title = `Prices: ${q}; account: ${acc}${stale.length ? `; stale: ${stale.join(", ")}` : ""}`;
    setText(connText, text);
  };

  store.on("account", render);
  store.on("accounts", render);
  store.on("quotes", render);
  store.on("positions", render);
  store.on("marginCall", render);
  store.on("connection", renderConn);
  store.on("clock", renderConn);
  store.on("quotes", renderConn);
  // Narrow screens hide the email; the log-out button still says whose session it ends.
  const showUser = (): void => {
    setText(user, ctx.session.email ?? "");
    logout.title = `Log out ${ctx.session.email ?? ""}`;
  };
  ctx.session.onChange(showUser);
  showUser();
  render();
  renderConn();
  return { bar, banner };
}
