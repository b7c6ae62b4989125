// Function URL events (payload format 2.0) to web Requests, and the verified IAM caller.
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
import { callerFromArn, type IdentityRules } from '../core/caller.ts';
import type { Caller, ProxyRequest } from '../core/proxy.ts';

export interface FunctionUrlEvent {
  version: string;
  rawPath: string;
  rawQueryString?: string;
  headers?: Record<string, string>;
  cookies?: string[];
  body?: string;
  isBase64Encoded?: boolean;
  requestContext: {
    domainName?: string;
    /** `sourceIp`: the caller's address as AWS saw it (the public URL's client). */
    http: { method: string; path: string; sourceIp?: string };
    authorizer?: { iam?: { userArn?: string } } | null;
  };
}

/** The request without its body, which `bodyOf` gives as bytes (the core takes it that way). */
export function toRequest(event: FunctionUrlEvent): ProxyRequest {
  const headers = new Headers();
  for (const [name, value] of Object.entries(event.headers ?? {})) headers.set(name, value);
  const host = event.requestContext.domainName ?? headers.get('host') ?? 'localhost';
  const query = event.rawQueryString ? `?${event.rawQueryString}` : '';
  return { url: `https://${host}${event.rawPath}${query}`, method: event.requestContext.http.method, headers, body: null };
}

/** The body bytes: a string, base64 when `isBase64Encoded`, absent when there is none. */
export function bodyOf(event: FunctionUrlEvent): Uint8Array | undefined {
  const method = event.requestContext.http.method;
  if (event.body === undefined || method === 'GET' || method === 'HEAD') return undefined;
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
}

/** Only the authorizer block counts: AWS put it there after verifying the SigV4 signature. */
export function callerOf(event: FunctionUrlEvent, rules?: IdentityRules): Caller | undefined {
  const arn = event.requestContext.authorizer?.iam?.userArn;
  return arn ? callerFromArn(arn, rules) : undefined;
}
