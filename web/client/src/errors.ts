/**
 * Errors reported through `handleError`. `code` is the server's code
 * (`resume_window_exceeded`, `stream_not_found`, `too_many_connections`, …)
 * or the client's own: `network_error`, `attempts_exhausted`,
 * `unexpected_content_type`, `http_error` (a non-2xx without a JSON error),
 * `invalid_url`.
 */
export class SluiceError extends Error {
  readonly code: string;
  /** HTTP status, when the error came from a response. */
  readonly status: number | undefined;
  /** resume_window_exceeded / history_truncated: the oldest retained sequence. */
  readonly firstAvailable: number | undefined;
  /** The stream (requestId) the error is about, when known. */
  readonly stream: string | undefined;

  constructor(
    code: string,
    message: string,
    extra: { status?: number; firstAvailable?: number; stream?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.name = 'SluiceError';
    this.code = code;
    this.status = extra.status;
    this.firstAvailable = extra.firstAvailable;
    this.stream = extra.stream;
  }
}
