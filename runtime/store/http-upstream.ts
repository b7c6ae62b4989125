// The OpenAI hop on node:http(s) with keep-alive agents. Node's built-in fetch costs about twice
// the time of a plain request per call (measured in bench/proxy.ts); this keeps the web
// Request/Response shape the core expects and only swaps the transport.
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { Upstream } from '../core/ports.ts';

export function createHttpUpstream(opts: { maxSockets?: number } = {}): Upstream {
  const agentOptions = { keepAlive: true, maxSockets: opts.maxSockets ?? 256, scheduling: 'lifo' as const };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };

  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      const body = typeof init.body === 'string' ? Buffer.from(init.body) : (init.body as Uint8Array | undefined);
      const headers: Record<string, string> = {};
      const given = init.headers instanceof Headers ? init.headers : new Headers(init.headers);
      given.forEach((value, name) => (headers[name] = value));
      if (body) headers['content-length'] = String(body.byteLength);
      const signal = init.signal ?? undefined;
      if (signal?.aborted) return reject(signal.reason);

      const req = (secure ? https : http).request(target, {
        method: init.method ?? 'GET',
        headers,
        agent: secure ? agents.https : agents.http,
      });
      // Abort like fetch does: reject (or fail the body) with the signal's reason, e.g. TimeoutError.
      let response: http.IncomingMessage | undefined;
      const onAbort = () => (response ?? req).destroy(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      req.on('response', (res) => {
        response = res;
        res.on('close', () => signal?.removeEventListener('abort', onAbort));
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
        const status = res.statusCode ?? 502;
        const empty = status === 204 || status === 304 || init.method === 'HEAD';
        const bytes = decoded(res, responseHeaders);
        resolve(
          new Response(empty ? null : toWebStream(bytes), {
            status,
            statusText: res.statusMessage,
            headers: responseHeaders,
          }),
        );
      });
      req.end(body);
    });
}

/** We ask for identity encoding; should a server compress anyway, decode as fetch would. */
function decoded(res: http.IncomingMessage, headers: Headers): Readable {
  const encoding = headers.get('content-encoding')?.trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip' ? zlib.createGunzip()
    : encoding === 'deflate' ? zlib.createInflate()
    : encoding === 'br' ? zlib.createBrotliDecompress()
    : undefined;
  if (!decoder) return res;
  headers.delete('content-encoding');
  headers.delete('content-length');
  res.on('error', (err) => decoder.destroy(err));
  return res.pipe(decoder);
}

/**
 * A web stream over a node Readable, chunk for chunk, pausing the socket while the consumer lags.
 * Leaner than Readable.toWeb, whose extra buffering showed up in the stream first-byte figures.
 */
function toWebStream(source: Readable): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let open = true;
        const finish = (err?: unknown) => {
          if (!open) return;
          open = false;
          if (err) controller.error(err);
          else controller.close();
        };
        source.on('data', (chunk: Buffer) => {
          if (!open) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) source.pause();
        });
        source.once('end', () => finish());
        source.once('error', (err) => finish(err));
        // A connection cut mid-body may close without an error: that is not a complete answer.
        source.once('close', () => finish(new Error('The upstream connection closed before the response ended.')));
      },
      pull() {
        source.resume();
      },
      cancel(reason) {
        source.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 1 },
  );
}
