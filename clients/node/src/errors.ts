// What a failed call says, decoded with the generated google.rpc types: the canonical code, the
// ErrorInfo reason (a value of the generated ErrorReason) and the fields a BadRequest names.
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../../../gen/ts/exness/common/v1/errors_pb";
import { BadRequestSchema, ErrorInfoSchema } from "../../../gen/ts/google/rpc/error_details_pb";

export interface Failure {
  code: Code;
  /** ErrorInfo.reason as sent, e.g. "INSUFFICIENT_MARGIN"; empty when there is none. */
  reason: string;
  /** The same reason as the generated enum; undefined for a reason the contract lacks. */
  reasonValue: ErrorReason | undefined;
  metadata: Record<string, string>;
  /** Proto field paths named by BadRequest field violations. */
  fields: string[];
}

export function failureOf(e: unknown): Failure {
  const err = ConnectError.from(e);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const reason = info?.reason ?? "";
  return {
    code: err.code,
    reason,
    reasonValue: ErrorReason[reason as keyof typeof ErrorReason],
    metadata: info?.metadata ?? {},
    fields: err.findDetails(BadRequestSchema).flatMap((bad) => bad.fieldViolations.map((v) => v.field)),
  };
}
