// Function URL events (payload format 2.0) to web Requests, and the verified IAM caller.
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
import { callerFromArn } from '../core/caller.ts';
import type { Caller } from '../core/proxy.ts';

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
    http: { method: string; path: string };
    authorizer?: { iam?: { userArn?: string } } | null;
  };
}

export function toRequest(event: FunctionUrlEvent): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(event.headers ?? {})) headers.set(name, value);
  const host = event.requestContext.domainName ?? headers.get('host') ?? 'localhost';
  const query = event.rawQueryString ? `?${event.rawQueryString}` : '';
  const method = event.requestContext.http.method;
  const body =
    event.body === undefined || method === 'GET' || method === 'HEAD'
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, 'base64')
        : event.body;
  return new Request(`https://${host}${event.rawPath}${query}`, { method, headers, body });
}

/** Only the authorizer block counts: AWS put it there after verifying the SigV4 signature. */
export function callerOf(event: FunctionUrlEvent): Caller | undefined {
  const arn = event.requestContext.authorizer?.iam?.userArn;
  return arn ? callerFromArn(arn) : undefined;
}
