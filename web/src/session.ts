// The trader's session: tokens, refresh before expiry, and what happens when it fails.
// Tokens live in sessionStorage (per tab): refresh tokens are single-use, so two tabs sharing one
// would trip the server's reuse detection and end both sessions.
import type { Clients } from "./api/clients";
import { describeError } from "./api/errors";

const STORAGE_KEY = "exness.session";
// Refresh this long before the access token expires (or at 80 % of a very short lifetime).
const REFRESH_MARGIN_S = 30;

interface Stored {
  email: string;
  accessToken: string;
  refreshToken: string;
  expiresAt: number; // epoch ms
}

export interface TokenGrant {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

type Listener = (loggedIn: boolean, message: string | null) => void;

export class Session {
  private state: Stored | null = null;
  private timer: number | undefined;
  private refreshing: Promise<boolean> | null = null;
  private listeners: Listener[] = [];
  private clients: Clients | null = null;

  constructor() {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      if (raw) this.state = JSON.parse(raw) as Stored;
    } catch {
      this.state = null;
    }
  }

  attach(clients: Clients): void {
    this.clients = clients;
    if (this.state) this.schedule();
  }

  get email(): string | null {
    return this.state?.email ?? null;
  }

  get accessToken(): string | null {
    return this.state?.accessToken ?? null;
  }

  get loggedIn(): boolean {
    return this.state !== null;
  }

  onChange(fn: Listener): void {
    this.listeners.push(fn);
  }

  /** Starts a session from Register/Login tokens. */
  begin(email: string, grant: TokenGrant): void {
    this.store(email, grant);
    this.emit(true, null);
  }

  /** Ends the session locally and tells the server to revoke the refresh token. */
  async logout(): Promise<void> {
    const token = this.state?.refreshToken;
    this.clear();
    this.emit(false, null);
    if (token && this.clients) {
      try {
        await this.clients.auth.logout({ refreshToken: token });
      } catch {
        // The local session is gone either way; the refresh token expires on its own.
      }
    }
  }

  /** Ends the session because it can no longer be renewed, with a reason for the login screen. */
  expire(message: string): void {
    if (!this.state) return;
    this.clear();
    this.emit(false, message);
  }

  /**
   * Gets a new token pair. Concurrent callers share one request: a refresh token may be
   * presented only once. Resolves false (and ends the session) when refreshing fails for good.
   */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const current = this.state;
    if (!current || !this.clients) return false;
    try {
      const res = await this.clients.auth.refresh({ refreshToken: current.refreshToken });
      if (this.state !== current) return this.state !== null; // logged out meanwhile
      this.store(current.email, res);
      return true;
    } catch (e) {
      const text = describeError(e);
      // A transient outage: keep the session and try again shortly; the access token may
      // still be valid for a while.
      const transient = /unavailable|too long|connection/i.test(text);
      if (transient && current.expiresAt > Date.now()) {
        this.schedule(5_000);
        return true;
      }
      this.expire(`Could not renew your session: ${text}`);
      return false;
    }
  }

  private store(email: string, grant: TokenGrant): void {
    this.state = {
      email,
      accessToken: grant.accessToken,
      refreshToken: grant.refreshToken,
      expiresAt: Date.now() + grant.expiresIn * 1000,
    };
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    } catch {
      // Private mode: the session then lasts as long as the page.
    }
    this.schedule();
  }

  private schedule(delayMs?: number): void {
    window.clearTimeout(this.timer);
    if (!this.state) return;
    const left = Math.max(this.state.expiresAt - Date.now(), 0);
    // Long-lived tokens: renew REFRESH_MARGIN_S before expiry; short ones at 80 % of what is left.
    const ahead = left > 2 * REFRESH_MARGIN_S * 1000 ? left - REFRESH_MARGIN_S * 1000 : left * 0.8;
    const wait = delayMs ?? Math.max(1_000, ahead);
    this.timer = window.setTimeout(() => void this.refresh(), wait);
  }

  private clear(): void {
    window.clearTimeout(this.timer);
    this.state = null;
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      /* ignore */
    }
  }

  private emit(loggedIn: boolean, message: string | null): void {
    for (const fn of this.listeners) fn(loggedIn, message);
  }
}
