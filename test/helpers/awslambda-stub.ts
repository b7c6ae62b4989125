// A faithful stand-in for the globals the Node.js Lambda runtime installs (`awslambda`), and a way to
// invoke a streaming handler the way the runtime does, collecting what the function URL would send.
// Behaviour follows aws/aws-lambda-nodejs-runtime-interface-client (src/utils/globals.ts,
// src/stream/http-response-stream.ts, src/stream/response-stream.ts,
// src/runtime/streaming-invoke-processor.ts):
// - `streamifyResponse(handler)` only marks the handler (a symbol) and returns it unchanged.
// - `HttpResponseStream.from(stream, metadata)` sets the content type to the HTTP-integration type and
//   installs `_onBeforeFirstWrite`: the JSON prelude and 8 NUL bytes go out on the first `write()`
//   only. `end(chunk)` bypasses the patched `write`, so a handler that never calls `write()` sends no
//   prelude at all (its status and headers are lost).
// - The stream handed to the handler is not the Writable itself but an object exposing a subset of
//   its methods and properties, bound to it.
// - Non-string, non-Buffer, non-Uint8Array chunks are JSON.stringify'd.
// - The handler must return a promise; after it resolves the stream must be finished.
import { Writable } from 'node:stream';

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';
export const PRELUDE_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const DELIMITER_LEN = 8;

const WRITABLE_METHODS = [
  'cork', 'destroy', 'end', 'uncork', 'write',
  'addListener', 'on', 'once', 'prependListener', 'prependOnceListener', 'off', 'removeListener',
  'removeAllListeners', 'setMaxListeners', 'getMaxListeners', 'listeners', 'rawListeners', 'listenerCount',
  'eventNames', 'emit',
  'setContentType',
] as const;
const PROPS_READ_WRITE = ['destroyed', '_onBeforeFirstWrite'] as const;
const PROPS_READ_ONLY = [
  'writableFinished', 'writableObjectMode', 'writableEnded', 'writableNeedDrain', 'writableHighWaterMark',
  'writableCorked', 'writableLength', 'writable',
] as const;

export class InvalidStreamingOperation extends Error {
  override name = 'InvalidStreamingOperation';
}

type FirstWriteHook = (write: (chunk: unknown) => boolean) => void;

/** The runtime's `awslambda.HttpResponseStream`. */
export class HttpResponseStream {
  static from(underlyingStream: Writable, prelude: Record<string, unknown>): Writable {
    const stream = underlyingStream as Writable & { setContentType(type: string): void; _onBeforeFirstWrite?: FirstWriteHook };
    stream.setContentType(PRELUDE_CONTENT_TYPE);
    // JSON.stringify is required: a NUL byte may not appear in the prelude.
    const metadataPrelude = JSON.stringify(prelude);
    stream._onBeforeFirstWrite = (write) => {
      write(metadataPrelude);
      write(new Uint8Array(DELIMITER_LEN));
    };
    return stream;
  }
}

function streamifyResponse<H extends (...args: never[]) => unknown>(handler: H, options?: { highWaterMark?: number }): H {
  const marked = handler as unknown as Record<symbol, unknown>;
  marked[HANDLER_STREAMING] = STREAM_RESPONSE;
  if (typeof options?.highWaterMark === 'number') marked[HANDLER_HIGHWATERMARK] = Math.trunc(options.highWaterMark);
  return handler;
}

/** Installs `globalThis.awslambda` (idempotent). Importing this module does it once. */
export function installAwsLambdaStub(): void {
  const g = globalThis as unknown as { awslambda?: Record<string, unknown> };
  g.awslambda = { ...g.awslambda, streamifyResponse, HttpResponseStream };
}
installAwsLambdaStub();

export interface Chunk {
  /** Milliseconds since the invocation started. */
  at: number;
  bytes: Buffer;
}

export interface StreamingResult {
  statusCode: number;
  headers: Record<string, string>;
  cookies?: string[];
  /** The body (after the prelude and its delimiter), UTF-8. */
  body: string;
  bodyBytes: Buffer;
  /** Body bytes as they reached the transport, one entry per write, with arrival times. */
  chunks: Chunk[];
  /** True when the stub cut the connection (see `disconnectAfterBytes`). */
  disconnected: boolean;
}

export interface InvokeOptions {
  /** Simulate the client going away: destroy the transport once this many body bytes arrived. */
  disconnectAfterBytes?: number;
  /** How long to wait after the handler resolved for the stream to finish (the runtime waits forever). */
  finishTimeoutMs?: number;
}

/** The transport under the response stream: collects each write with its arrival time. */
class Transport extends Writable {
  readonly raw: Chunk[] = [];
  contentType = DEFAULT_CONTENT_TYPE;
  disconnected = false;
  error?: Error;
  private size = 0;
  private start?: number;

  constructor(
    private readonly started: number,
    private readonly disconnectAfterBytes: number | undefined,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.raw.push({ at: Date.now() - this.started, bytes: Buffer.from(chunk) });
    this.size += chunk.length;
    callback();
    if (this.disconnectAfterBytes !== undefined && !this.disconnected && this.bodySize() >= this.disconnectAfterBytes) {
      this.disconnected = true;
      // Like the runtime's request to RAPID failing: the stream is destroyed with a socket error.
      setImmediate(() => this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    }
  }

  /** Body bytes so far: everything after the prelude's 8 NUL delimiter (no prelude: everything). */
  bodySize(): number {
    this.start ??= bodyStart(Buffer.concat(this.raw.map((c) => c.bytes)), this.contentType);
    return this.start === undefined ? 0 : this.size - this.start;
  }
}

/** Offset where the body starts, or undefined while the prelude is incomplete. */
function bodyStart(bytes: Buffer, contentType: string): number | undefined {
  if (contentType !== PRELUDE_CONTENT_TYPE) return 0;
  const nul = bytes.indexOf(0);
  if (nul < 0 || bytes.length < nul + DELIMITER_LEN) return undefined;
  return nul + DELIMITER_LEN;
}

/** What the runtime hands the handler: a Writable-only view bound to the transport. */
function responseStreamFor(transport: Transport): Writable {
  let status: 'ready' | 'write_called' = 'ready';
  const inner = transport as Transport & { setContentType(type: string): void; _onBeforeFirstWrite?: FirstWriteHook };
  inner.setContentType = (contentType: string) => {
    if (status !== 'ready') throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    transport.contentType = contentType;
  };
  const origWrite = transport.write.bind(transport) as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;
  (inner as { write: unknown }).write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    const data = typeof chunk !== 'string' && !Buffer.isBuffer(chunk) && !(chunk instanceof Uint8Array) ? JSON.stringify(chunk) : chunk;
    if (status === 'ready' && typeof inner._onBeforeFirstWrite === 'function') inner._onBeforeFirstWrite((ch) => origWrite(ch));
    const ret = origWrite(data, encoding, callback);
    status = 'write_called';
    return ret;
  };
  const view: Record<string, unknown> = {};
  const source = inner as unknown as Record<string, unknown>;
  for (const method of WRITABLE_METHODS) view[method] = (source[method] as (...a: unknown[]) => unknown).bind(inner);
  for (const p of PROPS_READ_WRITE) {
    Object.defineProperty(view, p, { get: () => source[p], set: (v) => { source[p] = v; } });
  }
  for (const p of PROPS_READ_ONLY) Object.defineProperty(view, p, { get: () => source[p] });
  return view as unknown as Writable;
}

type StreamingHandler<E> = (event: E, responseStream: Writable, context: unknown) => unknown;

/**
 * Invokes a streaming handler like the runtime: resolves after the handler's promise resolved and
 * the stream finished, with the parsed prelude and the body as the function URL would relay it.
 * Rejects when the handler throws, is not streamified or async, or leaves the stream unfinished.
 */
export async function invokeStreaming<E>(handler: StreamingHandler<E>, event: E, opts: InvokeOptions = {}): Promise<StreamingResult> {
  if ((handler as unknown as Record<symbol, unknown>)[HANDLER_STREAMING] !== STREAM_RESPONSE) {
    throw new Error('handler is not wrapped in awslambda.streamifyResponse: the runtime would invoke it buffered');
  }
  const started = Date.now();
  const transport = new Transport(started, opts.disconnectAfterBytes);
  // The runtime listens for errors on its request to RAPID, so a transport error is never unhandled.
  transport.on('error', (err) => (transport.error = err));
  const context = {
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    functionName: 'openai-proxy-test',
    getRemainingTimeInMillis: () => 600_000 - (Date.now() - started),
  };
  const result = handler(event, responseStreamFor(transport), context);
  if (!result || typeof (result as Promise<unknown>).then !== 'function') {
    throw new Error('Streaming does not support non-async handlers.');
  }
  await result;
  await new Promise<void>((resolve) => {
    if (transport.writableFinished || transport.destroyed) return resolve();
    const timer = setTimeout(resolve, opts.finishTimeoutMs ?? 1_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    transport.once('finish', done).once('close', done);
  });
  if (!transport.writableFinished && !transport.disconnected) throw new Error('Response stream is not finished.');
  return parse(transport);
}

function parse(transport: Transport): StreamingResult {
  const all = Buffer.concat(transport.raw.map((c) => c.bytes));
  if (transport.contentType !== PRELUDE_CONTENT_TYPE) {
    throw new Error(`response stream content type is ${transport.contentType}: HttpResponseStream.from was not used`);
  }
  if (all.length === 0) {
    throw new Error('the handler never called write(): the runtime sent no prelude, so the status and headers were lost');
  }
  const start = bodyStart(all, transport.contentType);
  if (start === undefined || !all.subarray(start - DELIMITER_LEN, start).equals(Buffer.alloc(DELIMITER_LEN))) {
    throw new Error('malformed prelude: expected JSON followed by 8 NUL bytes');
  }
  const prelude = JSON.parse(all.subarray(0, start - DELIMITER_LEN).toString('utf8')) as {
    statusCode?: number;
    headers?: Record<string, string>;
    cookies?: string[];
  };
  const chunks: Chunk[] = [];
  let offset = 0;
  for (const c of transport.raw) {
    const from = Math.max(start - offset, 0);
    if (from < c.bytes.length) chunks.push({ at: c.at, bytes: c.bytes.subarray(from) });
    offset += c.bytes.length;
  }
  if (typeof prelude.statusCode !== 'number') throw new Error('the prelude has no numeric statusCode');
  const bodyBytes = all.subarray(start);
  return {
    statusCode: prelude.statusCode,
    headers: prelude.headers ?? {},
    ...(prelude.cookies ? { cookies: prelude.cookies } : {}),
    body: bodyBytes.toString('utf8'),
    bodyBytes,
    chunks,
    disconnected: transport.disconnected,
  };
}
