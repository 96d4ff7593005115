// Words for enum values.
import { CloseReason, OrderSide, OrderType } from "../../../gen/ts/exness/trading/v1/trading_pb";

export function sideWord(s: OrderSide): string {
  return s === OrderSide.BUY ? "Buy" : s === OrderSide.SELL ? "Sell" : "—";
}

export function orderTypeWord(side: OrderSide, t: OrderType): string {
  const type = t === OrderType.LIMIT ? "Limit" : t === OrderType.STOP ? "Stop" : "Market";
  return `${sideWord(side)} ${type}`;
}

export function closeReasonWord(r: CloseReason): string {
  switch (r) {
    case CloseReason.CLIENT:
      return "Closed by you";
    case CloseReason.STOP_LOSS:
      return "Stop loss";
    case CloseReason.TAKE_PROFIT:
      return "Take profit";
    case CloseReason.STOP_OUT:
      return "Stop out";
    default:
      return "—";
  }
}
