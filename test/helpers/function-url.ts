// A function URL in RESPONSE_STREAM mode in front of a Runtime API emulator: HTTP requests become
// payload-format-2.0 events (with the caller AWS would have verified in requestContext.authorizer.iam),
// and the function's stream goes back to the caller as it comes: the prelude's status and headers,
// then the body bytes after its 8 NUL bytes, written as they arrive.
// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
// https://docs.aws.amazon.com/lambda/latest/dg/config-rs-write-functions.html
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Invocation, RuntimeApi } from './lambda-runtime-api.ts';

const PRELUDE_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const DELIMITER = Buffer.alloc(8);

export interface FunctionUrl {
  url: string;
  /** The invocations this URL started, in order. */
  invocations: Invocation[];
  close(): Promise<void>;
}

/** What AWS puts in `authorizer.iam` for an IAM user that signed the request. */
function iamAuthorizer(userArn: string) {
  const accountId = userArn.split(':')[4];
  return {
    iam: {
      accessKey: 'AKIAIOSFODNN7EXAMPLE', accountId, callerId: 'AIDACKCEVSQ6C2EXAMPLE',
      cognitoIdentity: null, principalOrgId: null, userArn, userId: 'AIDACKCEVSQ6C2EXAMPLE',
    },
  };
}

export async function serveFunctionUrl(api: RuntimeApi, opts: { userArn: string }): Promise<FunctionUrl> {
  const invocations: Invocation[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://function-url');
    const host = 'examplefunctionurlid0123456789ab.lambda-url.us-east-1.on.aws';
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && name !== 'connection') headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    headers.host = host;
    const now = new Date();
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers,
      requestContext: {
        accountId: 'anonymous',
        apiId: host.split('.')[0],
        authorizer: iamAuthorizer(opts.userArn),
        domainName: host,
        domainPrefix: host.split('.')[0],
        http: { method: req.method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
        requestId: randomUUID(),
        routeKey: '$default',
        stage: '$default',
        time: now.toUTCString(),
        timeEpoch: now.getTime(),
      },
      // Text bodies arrive as text, anything else base64-encoded.
      ...(!body.length
        ? { isBase64Encoded: false }
        : /^(application\/json|text\/)/.test(headers['content-type'] ?? '')
          ? { body: body.toString('utf8'), isBase64Encoded: false }
          : { body: body.toString('base64'), isBase64Encoded: true }),
    };
    const inv = api.invoke(event);
    invocations.push(inv);
    // The caller left: Lambda stops relaying, and the function's writes to its stream fail.
    res.on('close', () => {
      if (!res.writableFinished) inv.disconnect();
    });
    let pending = Buffer.alloc(0);
    let prelude = false;
    const contentType = await inv.contentType;
    try {
      for await (const chunk of inv.body) {
        if (prelude || contentType !== PRELUDE_CONTENT_TYPE) {
          if (!res.headersSent) res.writeHead(200, { 'content-type': contentType });
          res.write(chunk);
          continue;
        }
        pending = Buffer.concat([pending, chunk as Buffer]);
        const at = pending.indexOf(DELIMITER);
        if (at < 0) continue;
        const meta = JSON.parse(pending.subarray(0, at).toString('utf8')) as { statusCode?: number; headers?: Record<string, string>; cookies?: string[] };
        res.writeHead(meta.statusCode ?? 200, { ...meta.headers, ...(meta.cookies?.length ? { 'set-cookie': meta.cookies } : {}) });
        prelude = true;
        const rest = pending.subarray(at + DELIMITER.length);
        if (rest.length) res.write(rest);
      }
    } catch {
      // The invocation failed, timed out or was reset: what was sent stays sent, the rest is cut.
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Message: 'Internal Server Error' }));
      } else res.destroy();
      return;
    }
    if (!res.headersSent) res.writeHead(200, { 'content-type': contentType || 'application/json' });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    invocations,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
