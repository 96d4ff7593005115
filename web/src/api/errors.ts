// Turns failed calls into sentences a trader understands.
// The platform attaches google.rpc.ErrorInfo (stable `reason`) and google.rpc.BadRequest (field
// violations) to errors in grpc-status-details-bin; they are decoded with the types generated
// from the vendored google/rpc protos, and reasons are checked against the generated ErrorReason.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../../../gen/ts/exness/common/v1/errors_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  type BadRequest_FieldViolation,
  type ErrorInfo,
} from "../../../gen/ts/google/rpc/error_details_pb";
import { fmtMoney } from "../decimal";
import { fmtTime, zoneLabel } from "../time";

export type { ErrorInfo };
export type FieldViolation = BadRequest_FieldViolation;

export function errorInfoOf(err: ConnectError): ErrorInfo | null {
  return err.findDetails(ErrorInfoSchema)[0] ?? null;
}

export function fieldViolationsOf(err: ConnectError): FieldViolation[] {
  return err.findDetails(BadRequestSchema).flatMap((bad) => bad.fieldViolations);
}

/** The generated enum value of an ErrorInfo reason (sent without the ERROR_REASON_ prefix). */
function reasonValue(reason: string): ErrorReason | undefined {
  return ErrorReason[reason as keyof typeof ErrorReason];
}

/** Words for each ErrorReason; keyed by the generated enum, so a reason that is not declared
 * in the contract does not compile. */
const REASON_TEXT: Partial<Record<ErrorReason, string>> = {
  [ErrorReason.TOKEN_INVALID]: "Your session has expired. Please log in again.",
  [ErrorReason.PERMISSION_DENIED]: "You are not allowed to do that.",
  [ErrorReason.INTERNAL]: "Something went wrong on our side. Try again.",
  [ErrorReason.EMAIL_TAKEN]: "This email is already registered. Log in instead.",
  [ErrorReason.INVALID_CREDENTIALS]: "Wrong email or password.",
  [ErrorReason.REFRESH_TOKEN_INVALID]: "Your session has expired. Please log in again.",
  [ErrorReason.REFRESH_TOKEN_REUSED]: "Your session was ended for safety. Please log in again.",
  [ErrorReason.WEAK_PASSWORD]:
    "Password must be 10 to 128 characters and contain a letter and a digit.",
  [ErrorReason.USER_NOT_FOUND]: "This user no longer exists. Please register again.",
  [ErrorReason.UNKNOWN_SYMBOL]: "This instrument is not available.",
  [ErrorReason.NO_QUOTE]: "No price for this instrument yet. Try again in a moment.",
  [ErrorReason.BROKER_UNAVAILABLE]: "The platform is unavailable right now. Try again in a moment.",
  [ErrorReason.STALE_QUOTE]: "The price is out of date. Try again in a moment.",
  [ErrorReason.INVALID_VOLUME]: "Volume is outside the allowed range or step for this instrument.",
  [ErrorReason.INVALID_PRICE_LEVEL]:
    "Price, stop loss or take profit is on the wrong side of the market.",
  [ErrorReason.INVALID_LEVERAGE]: "Leverage is higher than allowed for this instrument.",
  [ErrorReason.ORDER_NOT_FOUND]: "This order no longer exists.",
  [ErrorReason.POSITION_NOT_FOUND]: "This position is already closed.",
  [ErrorReason.ORDER_NOT_PENDING]: "This order is no longer pending.",
  [ErrorReason.IDEMPOTENCY_KEY_REUSED]: "This order was already sent with different details.",
  [ErrorReason.WRONG_SHARD]: "Your account is temporarily unavailable. Try again.",
  [ErrorReason.ENGINE_UNAVAILABLE]: "Trading is restarting. Try again in a moment.",
  [ErrorReason.PENDING_ORDER_LIMIT]:
    "You have as many pending orders as the account allows. Cancel one first.",
  [ErrorReason.INSUFFICIENT_MARGIN]: "Not enough free margin",
  [ErrorReason.SLOW_CONSUMER]: "The live feed fell behind. Reconnecting.",
  [ErrorReason.ROUTE_NOT_FOUND]: "Not found.",
  [ErrorReason.METHOD_NOT_ALLOWED]: "Not allowed.",
  [ErrorReason.REQUEST_TOO_LARGE]: "The request is too large.",
  [ErrorReason.RATE_LIMITED]: "Too many attempts. Wait a moment and try again.",
  [ErrorReason.SERVICE_UNAVAILABLE]: "The platform is unavailable right now. Try again in a moment.",
  [ErrorReason.MARKET_CLOSED]: "The market is closed for this instrument.",
  [ErrorReason.ACCOUNT_NOT_FOUND]: "This trading account does not exist among yours.",
  [ErrorReason.UNKNOWN_ACCOUNT_TYPE]: "There is no account type by that name.",
  [ErrorReason.ACCOUNT_LIMIT]: "You already hold as many accounts as allowed.",
  [ErrorReason.LEVERAGE_CHANGE_REFUSED]:
    "Your open positions would need more margin at that leverage than your equity covers.",
  [ErrorReason.INSUFFICIENT_FREE_MARGIN]: "Not enough free margin to withdraw that much.",
};

/** Sentences whose figures come from ErrorInfo metadata; null falls back to REASON_TEXT. */
const WITH_FIGURES: Partial<Record<ErrorReason, (m: Record<string, string>) => string | null>> = {
  [ErrorReason.MARKET_CLOSED]: (m) => (m["opens_at"] ? `The market is closed: it opens ${fmtWhen(m["opens_at"])}.` : null),
  [ErrorReason.ACCOUNT_LIMIT]: (m) => (m["limit"] ? `You already hold ${m["limit"]} accounts, as many as allowed.` : null),
  [ErrorReason.LEVERAGE_CHANGE_REFUSED]: (m) => (m["required_margin"] && m["equity"]
    ? `Leverage not changed: your open positions would need ${fmtMoney(m["required_margin"])} USD of margin, more than your equity of ${fmtMoney(m["equity"])} USD.`
    : null),
  [ErrorReason.INSUFFICIENT_FREE_MARGIN]: (m) => (m["free_margin"]
    ? `Not enough free margin to withdraw that much: free margin is ${fmtMoney(m["free_margin"])} USD.`
    : null),
};

/** An instant from ErrorInfo metadata (RFC 3339 or epoch seconds) in the chosen time zone. */
function fmtWhen(value: string): string {
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  return Number.isNaN(ms) ? value : `${fmtTime(ms).slice(0, 16)} (${zoneLabel(ms).split(" ")[0]})`;
}

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
  const reason = info ? reasonValue(info.reason) : undefined;
  const violations = fieldViolationsOf(err);
  if (info && reason === ErrorReason.INSUFFICIENT_MARGIN) {
    const req = info.metadata["required_margin"];
    const free = info.metadata["free_margin"];
    let text = REASON_TEXT[ErrorReason.INSUFFICIENT_MARGIN] ?? "Not enough free margin";
    if (req && free) text += `: required ${fmtMoney(req)} USD, free ${fmtMoney(free)} USD.`;
    else if (req) text += `: required ${fmtMoney(req)} USD.`;
    else text += ".";
    return text;
  }
  // A violation names the field and says what is wrong with it: more use than the reason's
  // general sentence ("Stop loss: a BUY stop-loss must be below the current price 64,990.10").
  if (violations.length > 0) {
    return violations
      .map((v) => `${capitalize(fieldLabel(v.field))}: ${groupDigits(v.description)}`)
      .join(". ");
  }
  if (reason === ErrorReason.PENDING_ORDER_LIMIT && info?.metadata["limit"]) {
    return `You have ${info.metadata["limit"]} pending orders, as many as the account allows. Cancel one first.`;
  }
  const figures = reason !== undefined && info ? WITH_FIGURES[reason]?.(info.metadata) : null;
  if (figures) return figures;
  if (reason !== undefined && reason !== ErrorReason.INVALID_ARGUMENT && REASON_TEXT[reason]) {
    return REASON_TEXT[reason];
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
