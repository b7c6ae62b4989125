import type { ErrorBody } from './protocol.ts';

/**
 * Every refusal the proxy makes. It renders as OpenAI's error envelope so the official client raises
 * its typed errors (BadRequestError, PermissionDeniedError, RateLimitError, ...) with our message.
 */
export class WrapiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers, e.g. `x-should-retry: false` on budget refusals. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'WrapiError';
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Refusals that retrying cannot fix: tell the official client not to retry them. */
const NO_RETRY = { 'x-should-retry': 'false' };

export const badRequest = (message: string, code: string | null = null, param: string | null = null) =>
  new WrapiError(400, message, 'invalid_request_error', code, param);

export const notFound = (message: string, code = 'unknown_url') =>
  new WrapiError(404, message, 'invalid_request_error', code);

export const forbidden = (message: string, code: string) =>
  new WrapiError(403, message, 'permission_denied', code, null, NO_RETRY);

/** A body over the limit: function URLs take at most 6 MB, and so does the local stack. */
export const tooLarge = (maxBytes: number) =>
  new WrapiError(413, `The request body is larger than the proxy's limit of ${maxBytes} bytes.`, 'invalid_request_error', 'request_too_large');

export const overBudget = (message: string) =>
  new WrapiError(429, message, 'insufficient_quota', 'budget_exceeded', null, NO_RETRY);

export const unavailable = (message: string, code: string) =>
  new WrapiError(503, message, 'server_error', code);

export const badGateway = (message: string, status = 502) =>
  new WrapiError(status, message, 'server_error', status === 504 ? 'upstream_timeout' : 'upstream_unreachable');

/** OpenAI rejected the stage's own key: no caller can fix that, and retrying will not help. */
export const stageKeyRejected = (stage: string) =>
  new WrapiError(
    502,
    `OpenAI rejected stage ${stage}'s API key, so the proxy cannot forward calls until an admin replaces it ` +
      '(pulumi config set --secret openaiApiKey … then pulumi up; locally, OPENAI_API_KEY).',
    'server_error',
    'stage_key_rejected',
    null,
    NO_RETRY,
  );

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/**
 * The one place errors become responses. Unknown errors are logged by the caller and become a
 * generic 500: no stack traces, keys or prompts leave the proxy.
 */
export function toErrorResponse(err: unknown): Response {
  if (err instanceof WrapiError) return jsonResponse(err.status, err.body(), err.headers);
  return jsonResponse(500, {
    error: { message: 'The proxy failed to handle this request.', type: 'server_error', param: null, code: 'proxy_error' },
  });
}
