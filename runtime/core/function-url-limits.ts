// What a function URL can carry. AWS refuses an invocation whose event passes 6 MB before any code
// of ours runs, and the event is more than the body: its headers, the request context, and a body
// that is not text arrives base64-encoded (a third larger). The local stack applies the same sum, so
// a request that could never reach a deployed proxy is refused in development too.
import { WrapiError } from './errors.ts';

/** Lambda's synchronous invocation payload limit, which a function URL's event is held to. */
export const FUNCTION_URL_MAX_EVENT_BYTES = 6 * 1024 * 1024;

/**
 * The event around the body and headers (version, route, request context with the caller's
 * identity): 921 bytes in the reference IAM event; doubled for longer ARNs, paths and queries.
 */
const EVENT_FRAME_BYTES = 2048;

/**
 * Bodies Lambda passes as text. Which types it base64-encodes is not documented: anything not
 * plainly text counts as encoded, the side on which the local stack refuses early, never late.
 */
const TEXT_TYPE = /^(text\/|application\/(json|[\w.+-]+\+json|x-www-form-urlencoded|xml|javascript)\b)/i;

export function eventBytes(bodyBytes: number, contentType: string | undefined, headers: Record<string, string>): number {
  const body = bodyBytes === 0 || TEXT_TYPE.test(contentType ?? '') ? bodyBytes : Math.ceil(bodyBytes / 3) * 4;
  // As JSON: "name":"value", per header (escapes aside: header values are mostly plain ASCII).
  let headerBytes = 2;
  for (const [name, value] of Object.entries(headers)) headerBytes += name.length + value.length + 6;
  return EVENT_FRAME_BYTES + headerBytes + body;
}

export function tooLargeForFunctionUrl(size: number): WrapiError {
  return new WrapiError(
    413,
    `The request is too large for a Lambda function URL: about ${size} bytes once its headers and encoding are counted, ` +
      `over the ${FUNCTION_URL_MAX_EVENT_BYTES}-byte limit (a body that is not JSON or text is sent base64-encoded, a third larger). ` +
      'Send less: large files go through the Files API, not inline.',
    'invalid_request_error',
    'request_too_large',
  );
}
