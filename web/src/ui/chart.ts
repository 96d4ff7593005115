// Candle chart of the selected instrument: history from GetCandles, the forming candle advanced
// by every streamed bid (candles are of the bid, as the server builds them), and price lines for
// open positions and pending orders with their SL/TP. A position's SL or TP line can be dragged:
// letting go sends ModifyPosition and shows the answer. Times follow the chosen time zone.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  CandlestickSeries, ColorType, CrosshairMode, LineStyle, TickMarkType, createChart,
  type AutoscaleInfo, type CandlestickData, type IPriceLine, type ISeriesApi, type Time, type UTCTimestamp,
} from "lightweight-charts";
import { CandleInterval } from "../../../gen/ts/exness/market/v1/market_pb";
import { OrderSide, type Position } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { describeError } from "../api/errors";
import { Decimal, fmtPrice } from "../decimal";
import { h, setText } from "../dom";
import { fmtTick, fmtTime } from "../time";
import type { Ctx } from "./context";
import { orderTypeWord } from "./labels";

/** A line the trader may drag: a position's stop loss or take profit. */
interface Draggable {
  line: IPriceLine;
  price: number;
  positionId: string;
  kind: "sl" | "tp";
}

/** Pixels either side of a line where a press starts dragging it. */
const GRAB_PX = 6;

/** The chart element, with a hook end-to-end tests use to find a price's line on screen. */
export interface ChartHost extends HTMLElement {
  priceToY?: (price: number) => number | null;
}

const INTERVALS: { label: string; value: CandleInterval; seconds: number }[] = [
  { label: "1m", value: CandleInterval.CANDLE_INTERVAL_1M, seconds: 60 },
  { label: "5m", value: CandleInterval.CANDLE_INTERVAL_5M, seconds: 300 },
  { label: "15m", value: CandleInterval.CANDLE_INTERVAL_15M, seconds: 900 },
  { label: "1h", value: CandleInterval.CANDLE_INTERVAL_1H, seconds: 3600 },
  { label: "4h", value: CandleInterval.CANDLE_INTERVAL_4H, seconds: 14400 },
  { label: "1d", value: CandleInterval.CANDLE_INTERVAL_1D, seconds: 86400 },
];

/** Fresh formatter functions, so the chart relabels its axis when the zone changes. */
function zoneFormatters(): {
  timeScale: { tickMarkFormatter: (time: Time, type: TickMarkType) => string };
  localization: { timeFormatter: (time: Time) => string };
} {
  const dayMark = (t: TickMarkType): boolean => t === TickMarkType.Year || t === TickMarkType.Month || t === TickMarkType.DayOfMonth;
  return {
    timeScale: { tickMarkFormatter: (time, type) => fmtTick(Number(time) * 1000, dayMark(type)) },
    localization: { timeFormatter: (time) => fmtTime(Number(time) * 1000).slice(0, 16) },
  };
}

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
  let draggables: Draggable[] = [];
  let dragging: Draggable | null = null;

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
  const canvasHost: ChartHost = h("div", { class: "chart-host", testid: "chart" });
  const dragStatus = h("span", { class: "chart-drag-status", testid: "chart-drag-status", role: "status" }, "");
  const decimals = (): number => store.bySymbol.get(store.selected)?.priceDecimals ?? 2;

  const chart = createChart(canvasHost, {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "#12161f" },
      textColor: "#9aa4b5",
      fontFamily: "Inter, 'Segoe UI', system-ui, sans-serif",
      fontSize: 11,
      // The logo injects an inline <style>, which the page's CSP refuses; the attribution the
      // library's licence asks for is the link under the chart instead.
      attributionLogo: false,
    },
    grid: { vertLines: { color: "#1c2230" }, horzLines: { color: "#1c2230" } },
    crosshair: { mode: CrosshairMode.Normal },
    rightPriceScale: { borderColor: "#262d3d" },
    timeScale: {
      borderColor: "#262d3d", timeVisible: true, secondsVisible: false, rightOffset: 4,
      ...zoneFormatters().timeScale,
    },
    localization: {
      ...zoneFormatters().localization,
      // Thousands separators on the axis and the crosshair label.
      priceFormatter: (price: number) => fmtPrice(price.toFixed(decimals()), decimals()),
    },
  });
  canvasHost.priceToY = (price) => series.priceToCoordinate(price);
  const series: ISeriesApi<"Candlestick"> = chart.addSeries(CandlestickSeries, {
    upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN,
    wickUpColor: UP, wickDownColor: DOWN,
    // Keep every position's and order's levels in view, not only the candles.
    autoscaleInfoProvider: (original: () => AutoscaleInfo | null) => {
      const info = original();
      const levels = priceLines.map((l) => l.options().price);
      // While a line is dragged its old level stays in range: a scale that shrank under the
      // pointer would move the line away from it.
      if (dragging) levels.push(dragging.price);
      if (!info?.priceRange || levels.length === 0) return info;
      const { minValue, maxValue } = info.priceRange;
      return { ...info, priceRange: { minValue: Math.min(minValue, ...levels), maxValue: Math.max(maxValue, ...levels) } };
    },
  });

  const showOhlc = (c: CandlestickData<UTCTimestamp> | null): void => {
    const inst = store.bySymbol.get(store.selected);
    if (!c || !inst) return void setText(ohlc, "");
    const d = inst.priceDecimals;
    const f = (n: number): string => fmtPrice(n.toFixed(d), d);
    setText(ohlc, `${fmtTime(c.time * 1000).slice(11, 16)}  O ${f(c.open)}  H ${f(c.high)}  L ${f(c.low)}  C ${f(c.close)}`);
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
    if (dragging) return; // redrawn when the drag ends
    for (const line of priceLines) series.removePriceLine(line);
    priceLines = [];
    draggables = [];
    const inst = store.bySymbol.get(store.selected);
    if (!inst) return;
    const d = inst.priceDecimals;
    const add = (price: string, color: string, style: LineStyle, title: string): IPriceLine => {
      const line = series.createPriceLine({ price: Number(price), color, lineWidth: 1, lineStyle: style, axisLabelVisible: true, title });
      priceLines.push(line);
      return line;
    };
    for (const p of store.positions.values()) {
      if (p.symbol !== store.selected) continue;
      const buy = p.side === OrderSide.BUY;
      add(p.openPrice, buy ? "#3d8bfd" : "#f0a30a", LineStyle.Solid, `${buy ? "BUY" : "SELL"} ${p.volume}`);
      if (p.stopLoss) draggables.push({ line: add(p.stopLoss, DOWN, LineStyle.Dashed, "SL ⇕"), price: Number(p.stopLoss), positionId: p.positionId, kind: "sl" });
      if (p.takeProfit) draggables.push({ line: add(p.takeProfit, UP, LineStyle.Dashed, "TP ⇕"), price: Number(p.takeProfit), positionId: p.positionId, kind: "tp" });
    }
    // Pending orders: where they trigger, and their SL/TP once filled.
    for (const o of store.orders.values()) {
      if (o.symbol !== store.selected) continue;
      add(o.price, "#b48cff", LineStyle.Dotted, `${orderTypeWord(o.side, o.type).toUpperCase()} ${o.volume}`);
      if (o.stopLoss) add(o.stopLoss, DOWN, LineStyle.SparseDotted, "order SL");
      if (o.takeProfit) add(o.takeProfit, UP, LineStyle.SparseDotted, "order TP");
    }
    canvasHost.dataset.lines = String(priceLines.length);
    canvasHost.dataset.draggable = draggables.map((x) => `${x.kind}:${fmtPrice(String(x.price), d)}`).join(" ");
  }

  // ---- dragging SL/TP --------------------------------------------------------------------
  const yIn = (ev: PointerEvent): number => ev.clientY - canvasHost.getBoundingClientRect().top;
  const grabbed = (y: number): Draggable | null => {
    for (const d of draggables) {
      const ly = series.priceToCoordinate(d.price);
      if (ly !== null && Math.abs(ly - y) <= GRAB_PX) return d;
    }
    return null;
  };
  const priceAt = (y: number): Decimal | null => {
    const p = series.coordinateToPrice(y);
    return p === null || p <= 0 ? null : new Decimal(p.toFixed(decimals()));
  };
  // Capture phase, so the chart's own panning is switched off before it sees the press.
  canvasHost.addEventListener("pointerdown", (ev) => {
    const d = grabbed(yIn(ev));
    if (!d) return;
    ev.preventDefault();
    ev.stopPropagation();
    chart.applyOptions({ handleScroll: false, handleScale: false });
    canvasHost.setPointerCapture(ev.pointerId);
    dragging = d;
    canvasHost.classList.add("dragging");
  }, { capture: true });
  canvasHost.addEventListener("pointermove", (ev) => {
    const y = yIn(ev);
    if (!dragging) {
      canvasHost.classList.toggle("can-drag", grabbed(y) !== null);
      return;
    }
    const p = priceAt(y);
    if (!p) return;
    dragging.line.applyOptions({ price: p.toNumber(), title: `${dragging.kind.toUpperCase()} ${fmtPrice(p, decimals())}` });
  });
  const endDrag = (ev: PointerEvent): void => {
    const d = dragging;
    if (!d) return;
    dragging = null;
    canvasHost.classList.remove("dragging");
    chart.applyOptions({ handleScroll: true, handleScale: true });
    const p = priceAt(yIn(ev));
    const position = store.positions.get(d.positionId);
    if (!p || !position || p.eq(d.price)) return drawPositions();
    void sendLevel(position, d.kind, p);
  };
  canvasHost.addEventListener("pointerup", endDrag);
  canvasHost.addEventListener("pointercancel", () => {
    dragging = null;
    canvasHost.classList.remove("dragging");
    chart.applyOptions({ handleScroll: true, handleScale: true });
    drawPositions();
  });

  async function sendLevel(p: Position, kind: "sl" | "tp", level: Decimal): Promise<void> {
    const d = decimals();
    const text = level.toFixed(d);
    const name = kind === "sl" ? "Stop loss" : "Take profit";
    setText(dragStatus, `${name} → ${fmtPrice(level, d)}…`);
    canvasHost.dataset.drag = "sending";
    try {
      const res = await ctx.clients.trading.modifyPosition({
        positionId: p.positionId,
        stopLoss: kind === "sl" ? text : p.stopLoss,
        takeProfit: kind === "tp" ? text : p.takeProfit,
        // ModifyPosition replaces every level: the trailing stop stays as it is.
        trailingStop: p.trailingStop,
        accountId: store.accountId,
      });
      store.upsertPosition(res.position);
      const msg = `${p.symbol}: ${name.toLowerCase()} moved to ${fmtPrice(level, d)}`;
      setText(dragStatus, msg);
      canvasHost.dataset.drag = "done";
      ctx.notify(msg, "success");
    } catch (e) {
      const msg = `${name} not moved: ${describeError(e)}`;
      setText(dragStatus, msg);
      canvasHost.dataset.drag = "error";
      ctx.notify(msg, "error");
    }
    drawPositions();
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
  store.on("orders", drawPositions);
  // A new time zone relabels the axis.
  ctx.settings.onChange(() => {
    chart.applyOptions(zoneFormatters());
    showOhlc(last);
  });

  const bidAsk = h("span", { class: "chart-quote", testid: "chart-quote" });
  store.on("quotes", () => {
    const view = store.quotes.get(store.selected);
    const inst = store.bySymbol.get(store.selected);
    if (!view || !inst) return;
    setText(bidAsk, `${fmtPrice(view.quote.bid, inst.priceDecimals)} / ${fmtPrice(view.quote.ask, inst.priceDecimals)}`);
  });
  const markStale = (): void => {
    bidAsk.classList.toggle("stale", store.freshness(store.selected).state !== "fresh");
  };
  store.on("clock", markStale);
  store.on("connection", markStale);
  store.on("selected", markStale);

  const panel = h("section", { class: "panel chart-panel", "aria-label": "Chart", "data-pane": "chart" },
    h("header", { class: "panel-head chart-head" },
      h("div", { class: "chart-title" }, title, desc, bidAsk),
      h("div", { class: "seg-group", role: "group", "aria-label": "Candle interval" }, buttons)),
    h("div", { class: "chart-sub" }, ohlc, dragStatus, status),
    canvasHost,
    h("a", { class: "chart-credit", href: "https://www.tradingview.com/", target: "_blank", rel: "noopener noreferrer" }, "Charts by TradingView"));
  if (store.selected) queueMicrotask(() => void load());
  return panel;
}
