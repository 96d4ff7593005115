// The account switcher in the top bar and the "open account" dialog. The switcher lists the
// user's accounts (type, demo/real, number, balance); choosing one points every view, call and
// stream at it. A new account is of an account type whose conditions (spread and commission per
// instrument, margin call and stop-out levels, maximum leverage) are shown before it is opened.
import {
  AccountKind, type Account, type AccountType,
} from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { fmtMoney } from "../decimal";
import { h, setText } from "../dom";
import type { Store } from "../store";
import type { Ctx } from "./context";
import { formDialog } from "./dialogs";

export const LEVERAGES = [1, 2, 5, 10, 20, 50, 100, 200, 400, 500, 1000, 2000];

/** "Raw Spread", from the account type list, else from its id. */
export function typeName(store: Store, name: string): string {
  const t = store.accountTypes.find((x) => x.name === name);
  if (t?.displayName) return t.displayName;
  if (!name) return "Account";
  return name.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join(" ");
}

export function kindWord(kind: AccountKind): string {
  return kind === AccountKind.REAL ? "Real" : "Demo";
}

/** "Standard · Demo #1001". */
export function accountLabel(store: Store, a: Account): string {
  return `${typeName(store, a.accountType)} · ${kindWord(a.kind)} #${a.accountId}`;
}

/** Highest leverage the account on screen may have (its type's cap). */
export function maxLeverageOf(store: Store): number {
  const t = store.accountTypes.find((x) => x.name === store.accountType);
  return t?.maxLeverage || 2000;
}

/** Re-reads the user's accounts (fresh balances for the switcher). */
export async function refreshAccounts(ctx: Ctx): Promise<void> {
  const res = await ctx.clients.trading.listAccounts({});
  ctx.store.setAccounts(res.accounts);
}

async function ensureAccountTypes(ctx: Ctx): Promise<AccountType[]> {
  if (ctx.store.accountTypes.length === 0) {
    const res = await ctx.clients.trading.listAccountTypes({});
    ctx.store.setAccountTypes(res.accountTypes);
  }
  return ctx.store.accountTypes;
}

/** The top bar's button: names the account on screen and opens the list. */
export function accountSwitcher(ctx: Ctx): HTMLElement {
  const { store } = ctx;
  const label = h("span", { class: "acct-label", testid: "account-current" }, "Account");
  const button = h("button", {
    type: "button", class: "btn btn-sm acct-switch", testid: "account-switcher", "aria-haspopup": "dialog",
    title: "Your trading accounts: switch or open another",
  }, label, h("span", { class: "acct-caret", "aria-hidden": "true" }, "▾"));
  const render = (): void => {
    const a = store.accounts.find((x) => x.accountId === store.accountId) ?? store.account;
    setText(label, a ? accountLabel(store, a) : "Account");
    button.dataset.accountId = store.accountId;
    button.dataset.accountType = a?.accountType ?? "";
  };
  store.on("accounts", render);
  store.on("account", render);
  button.addEventListener("click", () => openSwitcher(ctx));
  render();
  return button;
}

function openSwitcher(ctx: Ctx): void {
  const { store } = ctx;
  const list = h("div", { class: "acct-list", role: "list", testid: "account-list" });
  const status = h("p", { class: "field-hint", role: "status" }, "");
  const render = (): void => {
    const accounts = store.accounts.length ? store.accounts : store.account ? [store.account] : [];
    list.replaceChildren(...accounts.map((a) => {
      const current = a.accountId === store.accountId;
      const b = h("button", {
        type: "button", class: "acct-option", role: "listitem", testid: "account-option",
        "data-account-id": a.accountId, "data-account-type": a.accountType, "aria-current": current ? "true" : null,
      },
        h("span", { class: "acct-option-name" }, typeName(store, a.accountType),
          h("span", { class: `acct-kind acct-kind-${kindWord(a.kind).toLowerCase()}`, testid: "account-kind" }, kindWord(a.kind)),
          a.swapFree ? h("span", { class: "acct-kind" }, "Swap-free") : null),
        h("span", { class: "acct-option-number muted", testid: "account-number" }, `#${a.accountId} · 1:${a.leverage}`),
        h("span", { class: "acct-option-balance num", testid: "account-option-balance" }, `${fmtMoney(a.balance)} ${a.currency || "USD"}`));
      b.addEventListener("click", () => {
        store.selectAccount(a.accountId);
        store.flush();
        dlg.close();
        ctx.notify(`Now trading on ${accountLabel(store, a)}`, "info");
      });
      return b;
    }));
  };
  const openBtn = h("button", { type: "button", class: "btn btn-primary", testid: "account-open" }, "Open account");
  const dlg = formDialog("Your accounts", "account-dialog", [list, status], "Done");
  dlg.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    dlg.close();
  });
  dlg.submit.before(openBtn);
  dlg.submit.hidden = true;
  openBtn.addEventListener("click", () => {
    dlg.close();
    openAccountDialog(ctx);
  });
  const off = store.on("accounts", render);
  dlg.onClosed(off);
  render();
  refreshAccounts(ctx).catch((e) => setText(status, `Could not refresh the list: ${describeError(e)}`));
}

/** The conditions of one account type, as a definition list and a per-instrument table. */
function conditions(t: AccountType | undefined): HTMLElement[] {
  if (!t) return [h("p", { class: "field-hint" }, "Loading account types…")];
  const dl = h("dl", { class: "confirm-lines", testid: "open-account-levels" },
    h("dt", {}, "Margin call"), h("dd", { class: "num", testid: "open-account-margin-call" }, `${t.marginCallLevel}%`),
    h("dt", {}, "Stop out"), h("dd", { class: "num", testid: "open-account-stop-out" }, `${t.stopOutLevel}%`),
    h("dt", {}, "Max leverage"), h("dd", { class: "num", testid: "open-account-max-leverage" }, `1:${t.maxLeverage}`));
  const rows = t.terms.map((x) => h("tr", { testid: "open-account-term", "data-symbol": x.symbol },
    h("td", {}, x.symbol),
    h("td", { class: "num", testid: "term-spread" }, x.spreadMarkup || "0"),
    h("td", { class: "num", testid: "term-commission" }, x.commissionPerLot && Number(x.commissionPerLot) !== 0 ? `${fmtMoney(x.commissionPerLot)} USD` : "none")));
  const table = h("table", { class: "grid-table terms" },
    h("thead", {}, h("tr", {}, h("th", {}, "Instrument"), h("th", { class: "num" }, "Spread markup"),
      h("th", { class: "num" }, "Commission / lot / side"))),
    h("tbody", {}, rows));
  return [dl, h("div", { class: "terms-scroll scroll" }, table)];
}

export function openAccountDialog(ctx: Ctx): void {
  const { store } = ctx;
  const type = h("select", { id: "open-account-type", testid: "open-account-type" });
  const terms = h("div", { class: "acct-terms", testid: "open-account-conditions" });
  const demo = h("input", { type: "radio", name: "open-account-kind", id: "open-account-kind-demo", value: "demo", checked: true, testid: "open-account-kind-demo" });
  const real = h("input", { type: "radio", name: "open-account-kind", id: "open-account-kind-real", value: "real", testid: "open-account-kind-real" });
  const leverage = h("select", { id: "open-account-leverage", testid: "open-account-leverage" });
  const swapFree = h("input", { type: "checkbox", id: "open-account-swap-free", testid: "open-account-swap-free" });

  const chosen = (): AccountType | undefined => store.accountTypes.find((t) => t.name === type.value);
  const render = (): void => {
    const t = chosen();
    terms.replaceChildren(...conditions(t));
    const max = t?.maxLeverage || 2000;
    const keep = leverage.value;
    leverage.replaceChildren(h("option", { value: "0" }, "Platform default"),
      ...LEVERAGES.filter((l) => l <= max).map((l) => h("option", { value: String(l) }, `1:${l}`)));
    leverage.value = [...leverage.options].some((o) => o.value === keep) ? keep : "0";
  };
  const fillTypes = (): void => {
    const keep = type.value;
    type.replaceChildren(...store.accountTypes.map((t) => h("option", { value: t.name }, t.displayName || t.name)));
    if (keep) type.value = keep;
    render();
  };
  type.addEventListener("change", render);

  const dlg = formDialog("Open an account", "open-account-dialog", [
    h("div", { class: "field" }, h("label", { for: "open-account-type" }, "Account type"), type),
    terms,
    h("fieldset", { class: "size-mode" }, h("legend", {}, "Kind"),
      h("label", { class: "radio", for: "open-account-kind-demo" }, demo, "Demo"),
      h("label", { class: "radio", for: "open-account-kind-real" }, real, "Real")),
    h("div", { class: "field" }, h("label", { for: "open-account-leverage" }, "Leverage"), leverage),
    h("label", { class: "check", for: "open-account-swap-free" }, swapFree, "Swap-free (no overnight swaps)"),
  ], "Open account");
  dlg.dialog.classList.add("dialog-wide");
  fillTypes();
  ensureAccountTypes(ctx).then(fillTypes, (e) => (dlg.error.textContent = `Could not load account types: ${describeError(e)}`));

  dlg.form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!type.value) {
      dlg.error.textContent = "Account type: choose one.";
      return;
    }
    dlg.submit.disabled = true;
    try {
      const res = await ctx.clients.trading.createAccount({
        accountType: type.value,
        kind: real.checked ? AccountKind.REAL : AccountKind.DEMO,
        leverage: Number(leverage.value),
        swapFree: swapFree.checked,
      });
      const a = res.account;
      if (!a) throw new Error("The platform sent no account.");
      store.setAccounts([...store.accounts.filter((x) => x.accountId !== a.accountId), a]);
      store.selectAccount(a.accountId);
      store.flush();
      ctx.notify(`Opened ${accountLabel(store, a)}`, "success");
      dlg.close();
      void refreshAccounts(ctx).catch(() => undefined);
    } catch (e) {
      dlg.error.textContent = describeError(e);
      dlg.submit.disabled = false;
    }
  });
}
