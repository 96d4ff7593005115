// Keeps a server stream open: reconnects with exponential backoff (and jitter) whenever it ends
// or fails, e.g. while Envoy or a service restarts, and reports its state for the indicator.
import { Code, ConnectError } from "@connectrpc/connect";

export type StreamState = "connecting" | "live" | "retrying" | "stopped";

export interface StreamOptions<T> {
  name: string;
  /** Opens the stream; must honour the signal. */
  open: (signal: AbortSignal) => AsyncIterable<T>;
  onMessage: (msg: T) => void;
  onState?: (state: StreamState, detail: string | null) => void;
  /** Called on UNAUTHENTICATED; resolve false to stop for good (session ended). */
  onUnauthenticated?: () => Promise<boolean>;
  minDelayMs?: number;
  maxDelayMs?: number;
}

export class ReconnectingStream<T> {
  private abort: AbortController | null = null;
  private running = false;
  private wake: (() => void) | null = null;
  state: StreamState = "stopped";
  attempts = 0;
  /** Reopened after UNAUTHENTICATED with a renewed token (no visible gap). */
  renewals = 0;

  constructor(private readonly opts: StreamOptions<T>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.abort?.abort();
    this.wake?.();
    this.setState("stopped", null);
  }

  /** Drops the current connection and opens a new one now (e.g. new symbol list). */
  restart(): void {
    this.attempts = 0;
    this.abort?.abort();
    this.wake?.();
  }

  private setState(state: StreamState, detail: string | null): void {
    this.state = state;
    this.opts.onState?.(state, detail);
  }

  private async loop(): Promise<void> {
    const min = this.opts.minDelayMs ?? 500;
    const max = this.opts.maxDelayMs ?? 8_000;
    // After a token renewal the stream reopens at once and keeps showing "live": the trader
    // should see no gap just because the access token it was opened with expired.
    let renewed = false;
    while (this.running) {
      const abort = new AbortController();
      this.abort = abort;
      if (!renewed) this.setState(this.attempts === 0 ? "connecting" : "retrying", null);
      renewed = false;
      let detail: string | null = "stream ended";
      let delivered = false;
      try {
        for await (const msg of this.opts.open(abort.signal)) {
          delivered = true;
          if (this.state !== "live") this.setState("live", null);
          this.attempts = 0; // a working connection resets the backoff
          this.opts.onMessage(msg);
        }
      } catch (e) {
        const err = ConnectError.from(e);
        detail = err.rawMessage || String(err.code);
        if (abort.signal.aborted && !this.running) break;
        if (err.code === Code.Unauthenticated && this.opts.onUnauthenticated) {
          if (!(await this.opts.onUnauthenticated())) {
            this.running = false;
            break;
          }
          // Only a stream that worked is reopened at once: one refused straight away backs off.
          renewed = delivered;
        }
      }
      if (!this.running) break;
      if (renewed) {
        this.renewals += 1;
        continue;
      }
      if (abort.signal.aborted) continue; // restart(): reconnect at once
      this.attempts += 1;
      const base = Math.min(max, min * 2 ** Math.min(this.attempts - 1, 10));
      const delay = base / 2 + Math.random() * (base / 2);
      this.setState("retrying", detail);
      await new Promise<void>((resolve) => {
        const t = window.setTimeout(resolve, delay);
        this.wake = () => {
          window.clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    this.setState("stopped", null);
  }
}
