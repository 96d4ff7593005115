// Turns failed calls into sentences a trader understands.
// The platform attaches google.rpc.ErrorInfo (stable `reason`) and google.rpc.BadRequest (field
// violations) to errors in grpc-status-details-bin. gen/ts has no google/rpc types, so the two
// small messages are decoded here straight from the wire with @bufbuild/protobuf's BinaryReader.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { fmtMoney } from "../decimal";

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

export interface FieldViolation {
  field: string;
  description: string;
}

const ERROR_INFO = "google.rpc.ErrorInfo";
const BAD_REQUEST = "google.rpc.BadRequest";

function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) info.reason = r.string();
    else if (field === 2 && wire === WireType.LengthDelimited) info.domain = r.string();
    else if (field === 3 && wire === WireType.LengthDelimited) {
      // map<string,string> entry: key = 1, value = 2
      const entry = new BinaryReader(r.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w);
      }
      info.metadata[key] = value;
    } else r.skip(wire);
  }
  return info;
}

function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      const v = new BinaryReader(r.bytes());
      const fv: FieldViolation = { field: "", description: "" };
      while (v.pos < v.len) {
        const [f, w] = v.tag();
        if (f === 1 && w === WireType.LengthDelimited) fv.field = v.string();
        else if (f === 2 && w === WireType.LengthDelimited) fv.description = v.string();
        else v.skip(w);
      }
      out.push(fv);
    } else r.skip(wire);
  }
  return out;
}

function rawDetails(err: ConnectError): { type: string; value: Uint8Array }[] {
  const out: { type: string; value: Uint8Array }[] = [];
  for (const d of err.details) {
    if ("type" in d && typeof d.type === "string" && d.value instanceof Uint8Array) {
      out.push({ type: d.type, value: d.value });
    }
  }
  return out;
}

export function errorInfoOf(err: ConnectError): ErrorInfo | null {
  for (const d of rawDetails(err)) {
    if (d.type === ERROR_INFO) {
      try {
        return decodeErrorInfo(d.value);
      } catch {
        return null;
      }
    }
  }
  return null;
}

export function fieldViolationsOf(err: ConnectError): FieldViolation[] {
  for (const d of rawDetails(err)) {
    if (d.type === BAD_REQUEST) {
      try {
        return decodeBadRequest(d.value);
      } catch {
        return [];
      }
    }
  }
  return [];
}

/** Words for each ErrorReason (exness.common.v1.ErrorReason without its prefix). */
const REASON_TEXT: Record<string, string> = {
  TOKEN_INVALID: "Your session has expired. Please log in again.",
  PERMISSION_DENIED: "You are not allowed to do that.",
  EMAIL_TAKEN: "This email is already registered. Log in instead.",
  INVALID_CREDENTIALS: "Wrong email or password.",
  REFRESH_TOKEN_INVALID: "Your session has expired. Please log in again.",
  REFRESH_TOKEN_REUSED: "Your session was ended for safety. Please log in again.",
  WEAK_PASSWORD: "Password must be 10 to 128 characters and contain a letter and a digit.",
  UNKNOWN_SYMBOL: "This instrument is not available.",
  NO_QUOTE: "No price for this instrument yet. Try again in a moment.",
  INSUFFICIENT_MARGIN: "Not enough free margin",
  STALE_QUOTE: "The price is out of date. Try again in a moment.",
  MARKET_CLOSED: "The market is closed for this instrument.",
  INVALID_VOLUME: "Volume is outside the allowed range or step for this instrument.",
  INVALID_PRICE_LEVEL: "Price, stop loss or take profit is on the wrong side of the market.",
  INVALID_LEVERAGE: "Leverage is higher than allowed for this instrument.",
  ORDER_NOT_FOUND: "This order no longer exists.",
  POSITION_NOT_FOUND: "This position is already closed.",
  ORDER_NOT_PENDING: "This order is no longer pending.",
  PENDING_ORDER_LIMIT: "You have as many pending orders as the account allows. Cancel one first.",
  IDEMPOTENCY_KEY_REUSED: "This order was already sent with different details.",
  WRONG_SHARD: "Your account is temporarily unavailable. Try again.",
};

const CODE_TEXT: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "The platform is unavailable right now. Try again in a moment.",
  [Code.DeadlineExceeded]: "The platform took too long to answer. Try again.",
  [Code.Unauthenticated]: "Your session has expired. Please log in again.",
  [Code.PermissionDenied]: "You are not allowed to do that.",
  [Code.ResourceExhausted]: "Too many attempts. Wait a moment and try again.",
  [Code.NotFound]: "Not found.",
  [Code.Internal]: "Something went wrong on our side. Try again.",
  [Code.Unknown]: "Something went wrong. Check your connection and try again.",
  [Code.Canceled]: "The request was cancelled.",
};

/** Field names in violations are proto names; show them as words. */
function fieldLabel(field: string): string {
  return field.replace(/_/g, " ").replace(/\./g, " ");
}

/** A sentence for any error a call may throw. */
export function describeError(e: unknown): string {
  const err = ConnectError.from(e);
  const info = errorInfoOf(err);
  const violations = fieldViolationsOf(err);
  if (info && info.reason === "INSUFFICIENT_MARGIN") {
    const req = info.metadata["required_margin"];
    const free = info.metadata["free_margin"];
    let text = REASON_TEXT.INSUFFICIENT_MARGIN;
    if (req && free) text += `: required ${fmtMoney(req)} USD, free ${fmtMoney(free)} USD.`;
    else if (req) text += `: required ${fmtMoney(req)} USD.`;
    else text += ".";
    return text;
  }
  // A violation names the field and says what is wrong with it: more use than the reason's
  // general sentence ("Stop loss: a BUY stop-loss must be below the current price 64,990.10").
  if (violations.length > 0) {
    return violations.map((v) => `${capitalize(fieldLabel(v.field))}: ${groupDigits(v.description)}`).join(". ");
  }
  if (info?.reason === "PENDING_ORDER_LIMIT" && info.metadata["limit"]) {
    return `You have ${info.metadata["limit"]} pending orders, as many as the account allows. Cancel one first.`;
  }
  if (info && info.reason !== "INVALID_ARGUMENT" && REASON_TEXT[info.reason]) {
    return REASON_TEXT[info.reason];
  }
  if (err.code === Code.InvalidArgument || err.code === Code.FailedPrecondition) {
    // No structured detail: the server's message is the best we have, without the code prefix.
    return err.rawMessage ? capitalize(err.rawMessage) : "The request was refused.";
  }
  return CODE_TEXT[err.code] ?? (err.rawMessage || "Something went wrong.");
}

/** The ErrorInfo reason of a failed call, if it has one. */
export function reasonOf(e: unknown): string | null {
  return errorInfoOf(ConnectError.from(e))?.reason ?? null;
}

/** Thousands separators for the numbers in a server's sentence ("65001.5" -> "65,001.5"). */
function groupDigits(text: string): string {
  return text.replace(/(?<![\d.:-])(\d{4,})(\.\d+)?(?![\d:-])/g, (_m, int: string, frac: string | undefined) =>
    int.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac ?? ""));
}

function capitalize(s: string): string {
  return s.length ? s[0].toUpperCase() + s.slice(1) : s;
}
