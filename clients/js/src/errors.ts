/**
 * Errors are values with a stable `code`. Codes that come from the server are the
 * wire protocol's own (docs/protocol.md "Error codes", docs/api.md "Errors");
 * codes minted by the SDK are listed in {@link ClientErrorCode}.
 */

/** Codes the SDK itself produces (the server's codes pass through unchanged). */
export type ClientErrorCode =
  | 'aborted' // the caller's AbortSignal fired
  | 'closed' // the client was closed (close()) while the call waited
  | 'queue_full' // the offline publish queue is at its bound
  | 'network' // a request could not reach the server
  | 'bad_response' // the server answered something the SDK cannot read
  | 'job_failed' // jobs.run: the job ended `failed`
  | 'job_canceled' // jobs.run: the job ended `canceled` by someone else
  | 'transport_blocked' // every transport was refused by something between us and the server
  | 'disconnected' // the connection ended while the request was in flight (retried where safe)
  | 'timeout' // an HTTP request or connect attempt took longer than its bound
  | 'no_handler'; // worker: a job arrived for a type with no handler

/** TetherError is every error the SDK throws or reports. */
export class TetherError extends Error {
  /** Stable code: a server code (`bad_channel`, `fenced`, ...) or a {@link ClientErrorCode}. */
  readonly code: string;
  /** HTTP status when the error came from an HTTP answer. */
  readonly status?: number;
  /** Extra fields the server sent with the error (e.g. `cursors` of `slow_consumer`). */
  readonly details?: Record<string, unknown>;

  constructor(code: string, message: string, opts: { status?: number; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message);
    this.name = 'TetherError';
    this.code = code;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.details !== undefined) this.details = opts.details;
    if (opts.cause !== undefined) (this as { cause?: unknown }).cause = opts.cause;
  }
}

/** abortError turns a signal's reason into the error a waiting call rejects with. */
export function abortError(signal: AbortSignal): unknown {
  const r = signal.reason;
  if (r instanceof Error) return r;
  return new TetherError('aborted', r === undefined ? 'aborted' : `aborted: ${String(r)}`, { cause: r });
}

/** Codes after which retrying the same request cannot succeed. */
const permanent = new Set([
  'bad_request', 'unknown_type', 'bad_channel', 'bad_cursor', 'cursor_ahead', 'invalid_json',
  'bad_idempotency_key', 'already_subscribed', 'not_subscribed', 'too_many_subscriptions',
  'body_too_large', 'not_found', 'method_not_allowed', 'bad_wait', 'bad_limit', 'fenced', 'not_worker',
]);

/** isPermanent reports whether a server error code means "do not retry". */
export function isPermanent(code: string): boolean {
  return permanent.has(code);
}
