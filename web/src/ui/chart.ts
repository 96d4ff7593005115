// Candle chart of the selected instrument: history from GetCandles, the forming candle advanced
// by every streamed bid (candles are of the bid, as the server builds them), and price lines for
// open positions with their SL/TP.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  CandlestickSeries, ColorType, CrosshairMode, LineStyle, createChart,
  type CandlestickData, type IPriceLine, type ISeriesApi, type UTCTimestamp,
} from "lightweight-charts";
import { CandleInterval } from "../../../gen/ts/exness/market/v1/market_pb";
import { OrderSide } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { fmtPrice } from "../decimal";
import { h, setText } from "../dom";
import type { Ctx } from "./context";

const INTERVALS: { label: string; value: CandleInterval; seconds: number }[] = [
  { label: "1m", value: CandleInterval.CANDLE_INTERVAL_1M, seconds: 60 },
  { label: "5m", value: CandleInterval.CANDLE_INTERVAL_5M, seconds: 300 },
  { label: "15m", value: CandleInterval.CANDLE_INTERVAL_15M, seconds: 900 },
  { label: "1h", value: CandleInterval.CANDLE_INTERVAL_1H, seconds: 3600 },
  { label: "4h", value: CandleInterval.CANDLE_INTERVAL_4H, seconds: 14400 },
  { label: "1d", value: CandleInterval.CANDLE_INTERVAL_1D, seconds: 86400 },
];

const UP = "#26a69a";
const DOWN = "#ef5350";

export function chartPanel(ctx: Ctx): HTMLElement {
  const { store } = ctx;
  let interval = INTERVALS[0];
  let loadSeq = 0;
  let last: CandlestickData<UTCTimestamp> | null = null;
  let loadedSymbol = "";
  let lastQuoteTick = 0;
  let priceLines: IPriceLine[] = [];

  const title = h("span", { class: "chart-symbol", testid: "chart-symbol" }, "");
  const desc = h("span", { class: "chart-desc" }, "");
  const ohlc = h("span", { class: "chart-ohlc", testid: "chart-ohlc" }, "");
  const status = h("span", { class: "chart-status", testid: "chart-status", role: "status" }, "");
  const buttons = INTERVALS.map((iv) => {
    const b = h("button", {
      type: "button", class: "seg", testid: `interval-${iv.label}`, "aria-pressed": String(iv === interval),
    }, iv.label);
    b.addEventListener("click", () => {
      if (interval === iv) return;
      interval = iv;
      for (const [i, other] of buttons.entries()) other.setAttribute("aria-pressed", String(INTERVALS[i] === iv));
      void load();
    });
    return b;
  });
  const canvasHost = h("div", { class: "chart-host", testid: "chart" });

  const chart = createChart(canvasHost, {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "#12161f" },
      textColor: "#9aa4b5",
      fontFamily: "Inter, 'Segoe UI', system-ui, sans-serif",
      fontSize: 11,
    },
    grid: { vertLines: { color: "#1c2230" }, horzLines: { color: "#1c2230" } },
    crosshair: { mode: CrosshairMode.Normal },
    rightPriceScale: { borderColor: "#262d3d" },
    timeScale: { borderColor: "#262d3d", timeVisible: true, secondsVisible: false, rightOffset: 4 },
  });
  const series: ISeriesApi<"Candlestick"> = chart.addSeries(CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN,
    wickUpColor: UP, wickDownColor: DOWN,
  });

  const showOhlc = (c: CandlestickData<UTCTimestamp> | null): void => {
    const inst = store.bySymbol.get(store.selected);
    if (!c || !inst) return void setText(ohlc, "");
    const d = inst.priceDecimals;
    const f = (n: number): string => n.toFixed(d);
    setText(ohlc, `O ${f(c.open)}  H ${f(c.high)}  L ${f(c.low)}  C ${f(c.close)}`);
  };

  async function load(): Promise<void> {
    const symbol = store.selected;
    const inst = store.bySymbol.get(symbol);
    if (!inst) return;
    const seq = ++loadSeq;
    setText(title, symbol);
    setText(desc, inst.description);
    series.applyOptions({
      priceFormat: { type: "price", precision: inst.priceDecimals, minMove: 10 ** -inst.priceDecimals },
    });
    setText(status, "Loading…");
    canvasHost.dataset.state = "loading";
    try {
      const res = await ctx.clients.market.getCandles({ symbol, interval: interval.value, limit: 500 });
      if (seq !== loadSeq) return; // a newer symbol/interval was chosen meanwhile
      const data: CandlestickData<UTCTimestamp>[] = [];
      for (const c of res.candles) {
        if (!c.openTime) continue;
        const time = Math.floor(timestampMs(c.openTime) / 1000) as UTCTimestamp;
        if (data.length && data[data.length - 1].time >= time) continue;
        data.push({ time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) });
      }
      series.setData(data);
      last = data.length ? { ...data[data.length - 1] } : null;
      loadedSymbol = symbol;
      chart.timeScale().scrollToRealTime();
      setText(status, data.length ? "" : "No candles yet");
      canvasHost.dataset.state = "ready";
      canvasHost.dataset.candles = String(data.length);
      showOhlc(last);
      drawPositions();
    } catch (e) {
      if (seq !== loadSeq) return;
      setText(status, `Chart unavailable: ${describeError(e)}`);
      canvasHost.dataset.state = "error";
    }
  }

  // The forming candle follows the bid; a quote in a later interval starts a new candle.
  const onQuotes = (): void => {
    if (loadedSymbol !== store.selected) return;
    const view = store.quotes.get(store.selected);
    if (!view || view.tick === lastQuoteTick || !view.quote.time) return;
    lastQuoteTick = view.tick;
    const price = Number(view.quote.bid);
    const t = Math.floor(timestampMs(view.quote.time) / 1000);
    const bucket = (t - (t % interval.seconds)) as UTCTimestamp;
    if (last && bucket < last.time) return; // late quote for an older candle
    if (last && bucket === last.time) {
      last = { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price };
    } else {
      last = { time: bucket, open: price, high: price, low: price, close: price };
    }
    series.update(last);
    canvasHost.dataset.lastClose = String(last.close);
    canvasHost.dataset.lastTime = String(last.time);
    showOhlc(last);
  };

  function drawPositions(): void {
    for (const line of priceLines) series.removePriceLine(line);
    priceLines = [];
    const inst = store.bySymbol.get(store.selected);
    if (!inst) return;
    for (const p of store.positions.values()) {
      if (p.symbol !== store.selected) continue;
      const buy = p.side === OrderSide.BUY;
      const label = `${buy ? "BUY" : "SELL"} ${p.volume}`;
      priceLines.push(series.createPriceLine({
        price: Number(p.openPrice), color: buy ? "#3d8bfd" : "#f0a30a", lineWidth: 1,
        lineStyle: LineStyle.Solid, axisLabelVisible: true, title: label,
      }));
      if (p.stopLoss) priceLines.push(series.createPriceLine({
        price: Number(p.stopLoss), color: DOWN, lineWidth: 1, lineStyle: LineStyle.Dashed,
        axisLabelVisible: true, title: "SL",
      }));
      if (p.takeProfit) priceLines.push(series.createPriceLine({
        price: Number(p.takeProfit), color: UP, lineWidth: 1, lineStyle: LineStyle.Dashed,
        axisLabelVisible: true, title: "TP",
      }));
    }
  }

  // After the quote stream was down, candles may have gaps: reload the history once it is back.
  let quotesWasLive = true;
  store.on("connection", () => {
    const live = store.streams.quotes === "live";
    if (live && !quotesWasLive) void load();
    quotesWasLive = live;
  });
  store.on("selected", () => {
    lastQuoteTick = 0;
    void load();
  });
  store.on("quotes", onQuotes);
  store.on("positions", drawPositions);

  const bidAsk = h("span", { class: "chart-quote", testid: "chart-quote" });
  store.on("quotes", () => {
    const view = store.quotes.get(store.selected);
    const inst = store.bySymbol.get(store.selected);
    if (!view || !inst) return;
    setText(bidAsk, `${fmtPrice(view.quote.bid, inst.priceDecimals)} / ${fmtPrice(view.quote.ask, inst.priceDecimals)}`);
  });

  const panel = h("section", { class: "panel chart-panel", "aria-label": "Chart" },
    h("header", { class: "panel-head chart-head" },
      h("div", { class: "chart-title" }, title, desc, bidAsk),
      h("div", { class: "seg-group", role: "group", "aria-label": "Candle interval" }, buttons)),
    h("div", { class: "chart-sub" }, ohlc, status),
    canvasHost);
  if (store.selected) queueMicrotask(() => void load());
  return panel;
}
