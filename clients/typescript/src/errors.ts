// Typed errors: every failed call rejects with a BillingError (a
// ConnectError) carrying the google.rpc.ErrorInfo the service attaches: its
// stable `reason` and `metadata`.
import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export class BillingError extends ConnectError {
  /** The ErrorInfo's upper-case reason; empty when none was sent (a connection failure). */
  readonly reason: string;
  readonly domain: string;
  /** The ErrorInfo's metadata (ConnectError's own `metadata` holds the trailers). */
  readonly infoMetadata: Readonly<Record<string, string>>;

  constructor(cause: ConnectError) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    this.details = cause.details;
    const [info] = cause.findDetails(ErrorInfoSchema);
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.infoMetadata = { ...(info?.metadata ?? {}) };
  }

  // ConnectError's instanceof accepts any ConnectError-like value; subclasses
  // here are told apart by their prototype chain.
  static [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

export class InvalidArgument extends BillingError {}
export class NotFound extends BillingError {}
export class AlreadyExists extends BillingError {}
export class Unauthenticated extends BillingError {}
export class PermissionDenied extends BillingError {}
export class FailedPrecondition extends BillingError {}
export class ResourceExhausted extends BillingError {}
/** The service or its storage could not answer; the client retried first. */
export class Unavailable extends BillingError {}
export class DeadlineExceeded extends BillingError {}

/** A plan's quota is spent (reason RATE_LIMITED). `used` and `limit` are exact decimals, as text. */
export class QuotaExceeded extends ResourceExhausted {
  readonly primitive: string;
  readonly used: string;
  readonly limit: string;
  /** The period's end, when the quota resets. */
  readonly resetsAt: Date | undefined;

  constructor(cause: ConnectError) {
    super(cause);
    this.primitive = this.infoMetadata.primitive ?? "";
    this.used = this.infoMetadata.used ?? "";
    this.limit = this.infoMetadata.limit ?? "";
    this.resetsAt = this.infoMetadata.resets_at ? new Date(this.infoMetadata.resets_at) : undefined;
  }
}

/** Too many recent failures (sign-ins, password checks): refused until `resetsAt`. */
export class Throttled extends ResourceExhausted {
  readonly resetsAt: Date | undefined;

  constructor(cause: ConnectError) {
    super(cause);
    this.resetsAt = this.infoMetadata.resets_at ? new Date(this.infoMetadata.resets_at) : undefined;
  }
}

type ErrorClass = new (cause: ConnectError) => BillingError;

const BY_REASON: Record<string, ErrorClass> = {
  RATE_LIMITED: QuotaExceeded,
  THROTTLED: Throttled,
  SIGN_IN_THROTTLED: Throttled,
  PASSWORD_CHECK_THROTTLED: Throttled,
};

const BY_CODE: Partial<Record<Code, ErrorClass>> = {
  [Code.InvalidArgument]: InvalidArgument,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.ResourceExhausted]: ResourceExhausted,
  [Code.Unavailable]: Unavailable,
  [Code.DeadlineExceeded]: DeadlineExceeded,
};

/** The typed error of a failed call. */
export function toBillingError(reason: unknown): BillingError {
  const error = ConnectError.from(reason);
  const [info] = error.findDetails(ErrorInfoSchema);
  const cls = (info && BY_REASON[info.reason]) || BY_CODE[error.code] || BillingError;
  return new cls(error);
}
