// The SDK's own errors. Calls through the proxy fail with the `openai` package's errors (the proxy
// speaks OpenAI's error envelope, so a refused budget is a `PermissionDeniedError` or
// `RateLimitError`); these classes cover what happens before a request leaves, and the admin API.

/** Base class of every error the SDK throws itself. */
export class WrapiError extends Error {
  override name = 'WrapiError';
}

/**
 * Something the SDK needs is not configured: no proxy URL for the stage, no AWS region, no AWS
 * credentials. The message says what to set. Thrown by constructors and on first use.
 */
export class WrapiConfigError extends WrapiError {
  override name = 'WrapiConfigError';
}

/** The admin function (or its endpoint) could not be reached at all. */
export class WrapiConnectionError extends WrapiError {
  override name = 'WrapiConnectionError';
}

/**
 * The admin function refused a request (bad input, unknown limit, ...). `code`, `type` and `param`
 * are the server's, as in OpenAI's error envelope.
 */
export class WrapiAdminError extends WrapiError {
  override name = 'WrapiAdminError';
  readonly stage: string;
  readonly code: string | null;
  readonly type: string;
  readonly param: string | null;

  constructor(message: string, opts: { stage: string; code?: string | null; type?: string; param?: string | null; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.stage = opts.stage;
    this.code = opts.code ?? null;
    this.type = opts.type ?? 'invalid_request_error';
    this.param = opts.param ?? null;
  }
}

/** The caller may not invoke the stage's admin function (not an admin, or credentials refused). */
export class WrapiAccessDeniedError extends WrapiAdminError {
  override name = 'WrapiAccessDeniedError';
}
