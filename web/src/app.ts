// Wires the session, the two live streams and the panels together.
// Quotes (public) stream from boot; the account stream runs while someone is logged in. Both
// reconnect with backoff on their own; after the account stream reconnects its first message is
// a snapshot, and positions, orders and history are re-read so nothing missed while it was down
// is lost. Everything follows the account chosen in the switcher: its id goes on every Trading
// call and on the account stream, and quotes carry its account type's spread.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CandleInterval } from "../../gen/ts/exness/market/v1/market_pb";
import {
  AccountEventType, type AccountEvent, type StreamAccountResponse,
} from "../../gen/ts/exness/trading/v1/trading_pb";
import type { StreamQuotesResponse } from "../../gen/ts/exness/market/v1/market_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClients, type Clients } from "./api/clients";
import { describeError } from "./api/errors";
import { ReconnectingStream } from "./api/stream";
import { dec, fmtMoney, fmtVolume } from "./decimal";
import { h } from "./dom";
import { Session } from "./session";
import { SettingsStore } from "./settings";
import { Store } from "./store";
import { setTimeZone } from "./time";
import { refreshAccounts } from "./ui/accounts";
import { blotterPanel } from "./ui/blotter";
import { chartPanel } from "./ui/chart";
import type { Ctx } from "./ui/context";
import { instrumentsPanel } from "./ui/instruments";
import { closeReasonWord } from "./ui/labels";
import { loginScreen } from "./ui/login";
import { bottomNav } from "./ui/nav";
import { ticketPanel } from "./ui/ticket";
import { toastHost } from "./ui/toasts";
import { topBar } from "./ui/topbar";

export class App {
  private readonly store = new Store();
  private readonly session = new Session();
  private readonly settings = new SettingsStore();
  private readonly clients: Clients;
  private readonly ctx: Ctx;
  private readonly toasts = toastHost();
  private quoteStream: ReconnectingStream<StreamQuotesResponse> | null = null;
  private accountStream: ReconnectingStream<StreamAccountResponse> | null = null;
  private terminal: HTMLElement | null = null;
  private resyncSeq = 0;
  /** The account type the quote stream was opened for ("" is the Standard spread). */
  private quotesType = "";

  constructor(private readonly root: HTMLElement) {
    this.clients = createClients({
      accessToken: () => this.session.accessToken,
      refresh: () => this.session.refresh(),
    });
    this.session.attach(this.clients);
    this.ctx = {
      clients: this.clients, store: this.store, session: this.session, settings: this.settings, notify: this.toasts.notify,
    };
    setTimeZone(this.settings.current.timeZone);
    // Quote ages grow while nothing arrives: re-judge freshness every second.
    window.setInterval(() => this.store.tick(Date.now()), 1_000);
    this.session.onChange((loggedIn, message) => (loggedIn ? this.showTerminal() : this.showLogin(message)));
    this.store.on("accountSwitch", () => this.onAccountSwitch());
    document.body.appendChild(this.toasts.el);
    // Exposed for end-to-end tests and debugging in the console; not used by the app itself.
    (window as unknown as { __terminal: unknown }).__terminal = {
      store: this.store, session: this.session, streams: () => ({ account: this.accountStream, quotes: this.quoteStream }),
    };
  }

  async start(): Promise<void> {
    if (this.session.loggedIn) this.showTerminal();
    else this.showLogin(null);
    void this.loadAccountTypes();
    await this.loadInstruments();
  }

  /** Account types are public: the open-account dialog shows their conditions. */
  private async loadAccountTypes(): Promise<void> {
    try {
      const res = await this.clients.trading.listAccountTypes({});
      this.store.setAccountTypes(res.accountTypes);
    } catch {
      // Retried when the open-account dialog is shown.
    }
  }

  /** The user's accounts for the switcher; a platform without ListAccounts has just one. */
  private async loadAccounts(): Promise<void> {
    try {
      await refreshAccounts(this.ctx);
      if (!this.terminal) return;
      const remembered = rememberedAccount();
      if (remembered && remembered !== this.store.accountId && this.store.accounts.some((a) => a.accountId === remembered)) {
        this.store.selectAccount(remembered);
      }
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Unimplemented) this.toasts.notify(`Could not list your accounts: ${describeError(e)}`, "error");
    }
  }

  /** Instruments are public; retried until the platform answers (it may still be starting). */
  private async loadInstruments(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.clients.market.listInstruments({});
        this.store.setInstruments(res.instruments);
        break;
      } catch (e) {
        if (attempt === 0) this.toasts.notify(`Loading instruments: ${describeError(e)}`, "warning");
        await sleep(Math.min(8_000, 500 * 2 ** attempt));
      }
    }
    this.startQuotes();
    void this.loadDayOpens();
  }

  private startQuotes(): void {
    const symbols = this.store.instruments.map((i) => i.symbol);
    if (symbols.length === 0) return;
    this.quoteStream?.stop();
    const accountType = quoteTypeOf(this.store.accountType);
    if (accountType !== this.quotesType) this.store.clearQuotes();
    this.quotesType = accountType;
    this.quoteStream = new ReconnectingStream<StreamQuotesResponse>({
      name: "quotes",
      open: (signal) => this.clients.market.streamQuotes({ symbols, accountType }, { signal }),
      onMessage: (m) => m.quote && this.store.applyQuote(m.quote),
      onState: (s) => this.store.setStream("quotes", s),
    });
    this.quoteStream.start();
  }

  /** The change column compares with the day's open, from each instrument's 1d candle. */
  private async loadDayOpens(): Promise<void> {
    await Promise.all(this.store.instruments.map(async (i) => {
      try {
        const res = await this.clients.market.getCandles({ symbol: i.symbol, interval: CandleInterval.CANDLE_INTERVAL_1D, limit: 1 });
        const c = res.candles[res.candles.length - 1];
        const today = Math.floor(Date.now() / 86_400_000);
        if (c?.openTime && Math.floor(timestampMs(c.openTime) / 86_400_000) === today) this.store.setDayOpen(i.symbol, c.open);
      } catch {
        // The change column then starts from the first quote this page sees.
      }
    }));
  }

  private showLogin(message: string | null): void {
    this.accountStream?.stop();
    this.accountStream = null;
    this.store.reset();
    this.store.setStream("account", "stopped");
    this.terminal = null;
    document.title = "Exness Terminal — Log in";
    this.root.replaceChildren(loginScreen(this.ctx, message));
  }

  private showTerminal(): void {
    if (this.terminal) return;
    document.title = "Exness Terminal";
    const { bar, banner } = topBar(this.ctx);
    const terminal = h("div", { class: "terminal", testid: "terminal" },
      bar, banner,
      h("main", { class: "workspace" },
        instrumentsPanel(this.ctx),
        h("div", { class: "center" }, chartPanel(this.ctx), blotterPanel(this.ctx)),
        ticketPanel(this.ctx)));
    terminal.appendChild(bottomNav(this.ctx, terminal));
    this.terminal = terminal;
    this.root.replaceChildren(terminal);
    this.store.emit("instruments", "selected", "quotes", "connection");
    this.startAccount();
    void this.loadAccounts();
  }

  /** A switch re-points the account stream, and the quotes when the spread differs. */
  private onAccountSwitch(): void {
    if (!this.terminal) return;
    rememberAccount(this.store.accountId);
    this.startAccount();
    this.followAccountType();
  }

  private followAccountType(): void {
    if (this.quoteStream && quoteTypeOf(this.store.accountType) !== this.quotesType) this.startQuotes();
  }

  private startAccount(): void {
    this.accountStream?.stop();
    const accountId = this.store.accountId;
    this.accountStream = new ReconnectingStream<StreamAccountResponse>({
      name: "account",
      open: (signal) => this.clients.trading.streamAccount({ accountId }, { signal }),
      onMessage: (m) => m.event && this.onAccountEvent(m.event),
      onState: (s) => this.store.setStream("account", s),
      onUnauthenticated: () => this.session.refresh(),
    });
    this.accountStream.start();
  }

  private onAccountEvent(ev: AccountEvent): void {
    const s = this.store;
    // A stream of the account shown before a switch may still deliver a last event.
    if (ev.accountId && s.accountId && ev.accountId !== s.accountId) return;
    if (ev.type === AccountEventType.ACCOUNT_SNAPSHOT) {
      s.lastSequence = ev.sequence;
      s.setAccount(ev.account);
      this.followAccountType();
      void this.resync();
      return;
    }
    if (ev.sequence > 0n && ev.sequence <= s.lastSequence) return; // already seen (at-least-once)
    if (ev.sequence > 0n) s.lastSequence = ev.sequence;
    s.setAccount(ev.account);
    switch (ev.type) {
      case AccountEventType.ORDER_PLACED:
      case AccountEventType.ORDER_FILLED:
      case AccountEventType.ORDER_CANCELLED:
      case AccountEventType.ORDER_EXPIRED:
        s.upsertOrder(ev.order);
        break;
      case AccountEventType.ORDER_REJECTED:
        s.upsertOrder(ev.order);
        if (ev.order) {
          const why = ev.order.rejectReason === "INSUFFICIENT_MARGIN" ? "not enough free margin" : ev.order.rejectReason.toLowerCase().replace(/_/g, " ");
          this.toasts.notify(`Pending order ${ev.order.symbol} was rejected: ${why}`, "error");
        }
        break;
      case AccountEventType.POSITION_OPENED:
      case AccountEventType.POSITION_MODIFIED:
        s.upsertPosition(ev.position);
        break;
      case AccountEventType.POSITION_CLOSED:
      case AccountEventType.STOP_OUT: {
        const t = ev.trade;
        s.addTrade(t);
        if (ev.position && ev.position.volume && !dec(ev.position.volume)?.isZero()) s.upsertPosition(ev.position);
        else if (t) s.removePosition(t.positionId);
        if (t && t.closeReason !== 1 /* CLIENT: the trader already saw it */) {
          const kind = ev.type === AccountEventType.STOP_OUT ? "error" : "info";
          this.toasts.notify(`${closeReasonWord(t.closeReason)}: ${fmtVolume(t.volume)} ${t.symbol} closed, ${fmtMoney(t.realizedPnl, true)} USD`, kind);
        }
        break;
      }
      case AccountEventType.BALANCE_CHANGED:
      case AccountEventType.SWAP_CHARGED:
        s.addLedger(ev.ledgerEntry);
        if (ev.position) s.upsertPosition(ev.position);
        break;
      case AccountEventType.TRAILING_STOP_MOVED:
        s.upsertPosition(ev.position);
        break;
      case AccountEventType.MARGIN_CALL:
        s.marginCallAt = Date.now();
        s.emit("marginCall");
        this.toasts.notify("Margin call: your margin level is low.", "warning");
        break;
      default:
        break;
    }
  }

  /** Re-reads positions, orders and history (after each (re)connect of the account stream). */
  private async resync(): Promise<void> {
    const seq = ++this.resyncSeq;
    const accountId = this.store.accountId;
    try {
      const trading = this.clients.trading;
      // Every open position and pending order (they are paged); history pages on demand.
      const [positions, orders, trd] = await Promise.all([
        allPages(async (pageToken) => {
          const r = await trading.listPositions({ pageSize: 500, pageToken, accountId });
          return [r.positions, r.nextPageToken] as const;
        }),
        allPages(async (pageToken) => {
          const r = await trading.listOrders({ pageSize: 500, pageToken, accountId });
          return [r.orders, r.nextPageToken] as const;
        }),
        trading.listTrades({ pageSize: 100, accountId }),
      ]);
      if (seq !== this.resyncSeq || !this.terminal || accountId !== this.store.accountId) return;
      this.store.setPositions(positions);
      this.store.setOrders(orders);
      this.store.setTrades(trd.trades, trd.nextPageToken);
    } catch (e) {
      this.toasts.notify(`Could not load your positions: ${describeError(e)}`, "error");
    }
  }
}

/** Follows next-page tokens until the last page. */
async function allPages<T>(page: (token: string) => Promise<readonly [T[], string]>): Promise<T[]> {
  const out: T[] = [];
  let token = "";
  do {
    const [items, next] = await page(token);
    out.push(...items);
    token = next;
  } while (token);
  return out;
}

/** The account type quotes are asked for: "" is the instruments' default (Standard) spread. */
function quoteTypeOf(accountType: string): string {
  return accountType === "standard" ? "" : accountType;
}

// The chosen account survives a reload of the tab (like the session, per tab).
const ACCOUNT_KEY = "exness.account";

function rememberAccount(id: string): void {
  try {
    sessionStorage.setItem(ACCOUNT_KEY, id);
  } catch {
    // Private mode: a reload shows the default account.
  }
}

function rememberedAccount(): string | null {
  try {
    return sessionStorage.getItem(ACCOUNT_KEY);
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => window.setTimeout(r, ms));
}
