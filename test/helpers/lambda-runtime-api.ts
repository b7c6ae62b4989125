// A Lambda Runtime API emulator, for running a function under the real runtime interface client
// (aws-lambda-ric) on loopback. It plays Lambda's part: it starts the runtime process, hands it one
// invocation at a time on GET /next, takes the answer buffered or streamed
// (`Lambda-Runtime-Function-Response-Mode: streaming`, chunked, errors in the
// `Lambda-Runtime-Function-Error-Type/Body` trailers), and stops the process at the function's
// deadline (the next invocation is then a cold start, as on Lambda).
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';

const API = '/2018-06-01/runtime';
/** Lambda's limit on a buffered (non-streamed) response. */
const BUFFERED_MAX_BYTES = 6 * 1024 * 1024;
const ERROR_TYPE = 'lambda-runtime-function-error-type';
const ERROR_BODY = 'lambda-runtime-function-error-body';

export interface FunctionSpec {
  name: string;
  /** `file.export`, resolved in taskRoot (the `_HANDLER` the runtime reads). */
  handler: string;
  taskRoot: string;
  /** The function's environment as configured; Lambda's own variables are added. */
  env: Record<string, string>;
  timeoutMs: number;
  memoryMb?: number;
  region?: string;
}

export interface RuntimeBinaries {
  node: string;
  /** aws-lambda-ric's index.mjs. */
  ric: string;
}

/** How an invocation ended, as Lambda would report it. */
export type InvocationEnd =
  | { kind: 'success' }
  /** /error, or a streamed response whose trailers name an error. */
  | { kind: 'error'; errorType: string; error: unknown }
  /** The deadline passed: the runtime process was stopped. */
  | { kind: 'timeout' }
  /** The runtime process exited while the invocation was running. */
  | { kind: 'exited'; code: number | null; signal: string | null };

export interface Invocation {
  requestId: string;
  /** The response bytes as the runtime sends them (a streamed prelude included), ended with the response. */
  body: PassThrough;
  /** The response's Content-Type as the runtime set it. */
  contentType: Promise<string>;
  streamed: Promise<boolean>;
  /** Resolves when the response is complete (or the invocation ended without one). */
  end: Promise<InvocationEnd>;
  /** Resolves when the function is done: the runtime asked for the next event, or was stopped. */
  done: Promise<InvocationEnd>;
  /**
   * The caller is gone. Lambda keeps taking the function's stream and drops it: the function is not
   * told (aws-lambda-nodejs-runtime-interface-client issue 145), its writes still succeed.
   */
  disconnect(): void;
  /** Bytes the function wrote after the caller had gone. */
  dropped(): number;
}

export interface RuntimeApi {
  /** host:port, the AWS_LAMBDA_RUNTIME_API the runtime is given. */
  address: string;
  invoke(event: unknown): Invocation;
  /** Processes started so far: each one a cold start. */
  coldStarts(): number;
  /** What the runtime printed (its logs, as CloudWatch would receive them). */
  logs(): string;
  close(): Promise<void>;
}

interface Running extends Invocation {
  event: unknown;
  deadlineMs: number;
  finish(end: InvocationEnd): void;
  complete(end: InvocationEnd): void;
  ended: boolean;
  result?: InvocationEnd;
  responseRequest?: IncomingMessage;
  gone: boolean;
  droppedBytes: number;
  timer?: NodeJS.Timeout;
  setContentType(type: string): void;
  setStreamed(streamed: boolean): void;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export async function startRuntimeApi(spec: FunctionSpec, binaries: RuntimeBinaries): Promise<RuntimeApi> {
  const queue: Running[] = [];
  let current: Running | undefined;
  let waiting: ServerResponse | undefined; // the runtime's pending GET /next
  let child: ChildProcess | undefined;
  let starts = 0;
  let closed = false;
  let output = '';
  const region = spec.region ?? 'us-east-1';
  const arn = `arn:aws:lambda:${region}:123456789012:function:${spec.name}`;

  const server = http.createServer((req, res) => route(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  function start(): void {
    starts += 1;
    // As Lambda's Node bootstrap starts it; the environment is the function's plus Lambda's own.
    const proc = spawn(binaries.node, ['--expose-gc', '--max-http-header-size=81920', binaries.ric], {
      cwd: spec.taskRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        LANG: 'en_US.UTF-8',
        TZ: ':UTC',
        ...spec.env,
        AWS_LAMBDA_RUNTIME_API: address,
        _HANDLER: spec.handler,
        LAMBDA_TASK_ROOT: spec.taskRoot,
        AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
        AWS_LAMBDA_FUNCTION_NAME: spec.name,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memoryMb ?? 512),
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${spec.name}`,
        AWS_LAMBDA_LOG_STREAM_NAME: `2026/01/01/[$LATEST]${randomUUID().replace(/-/g, '')}`,
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
      },
    });
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    proc.on('exit', (code, signal) => {
      if (child === proc) child = undefined;
      waiting = undefined;
      current?.finish({ kind: 'exited', code, signal });
      current = undefined;
      // An invocation that came in while the process was being stopped gets a fresh one.
      if (!closed && !child && queue.length > 0) start();
    });
    child = proc;
  }

  /** Hands the next queued invocation to the runtime's pending GET /next. */
  function dispatch(): void {
    if (!waiting || current || queue.length === 0) return;
    const inv = queue.shift()!;
    const res = waiting;
    waiting = undefined;
    current = inv;
    inv.deadlineMs = Date.now() + spec.timeoutMs;
    inv.timer = setTimeout(() => {
      // Lambda stops the whole execution environment at the deadline.
      inv.finish({ kind: 'timeout' });
      child?.kill('SIGKILL');
    }, spec.timeoutMs);
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': inv.requestId,
      'lambda-runtime-deadline-ms': String(inv.deadlineMs),
      'lambda-runtime-invoked-function-arn': arn,
      'lambda-runtime-trace-id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`,
    });
    res.end(JSON.stringify(inv.event));
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === `${API}/invocation/next`) return next(res);
    if (req.method === 'POST' && url === `${API}/init/error`) return initError(req, res);
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method === 'POST' && m) {
      const inv = current;
      if (!inv || inv.requestId !== decodeURIComponent(m[1]) || inv.ended) {
        req.resume();
        return reply(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
      }
      return m[2] === 'error' ? invocationError(inv, req, res) : response(inv, req, res);
    }
    req.resume();
    reply(res, 404, { errorMessage: `Unknown Runtime API path ${req.method} ${url}`, errorType: 'InvalidRequest' });
  }

  function next(res: ServerResponse): void {
    // Asking for the next event means the function is done with the current one.
    if (current) {
      const inv = current;
      current = undefined;
      clearTimeout(inv.timer);
      inv.complete(inv.result ?? { kind: 'error', errorType: 'Runtime.NoResponse', error: null });
    }
    waiting = res;
    res.on('close', () => {
      if (waiting === res) waiting = undefined;
    });
    dispatch();
  }

  function response(inv: Running, req: IncomingMessage, res: ServerResponse): void {
    const streamed = String(req.headers['lambda-runtime-function-response-mode'] ?? '').toLowerCase() === 'streaming';
    inv.setStreamed(streamed);
    inv.setContentType(String(req.headers['content-type'] ?? 'application/json'));
    inv.responseRequest = req;
    let size = 0;
    const held: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (inv.gone) inv.droppedBytes += chunk.length;
      else if (streamed) inv.body.write(chunk);
      else held.push(chunk);
    });
    req.on('end', () => {
      if (!streamed && size > BUFFERED_MAX_BYTES) {
        reply(res, 413, { errorMessage: 'Exceeded maximum allowed payload size (6291556 bytes).', errorType: 'RequestEntityTooLarge' });
        return inv.finish({ kind: 'error', errorType: 'Function.ResponseSizeTooLarge', error: null });
      }
      if (!streamed) inv.body.write(Buffer.concat(held));
      const errorType = req.trailers[ERROR_TYPE];
      const errorBody = req.trailers[ERROR_BODY];
      reply(res, 202, { status: 'OK' });
      if (errorType) inv.finish({ kind: 'error', errorType, error: errorBody ? JSON.parse(Buffer.from(errorBody, 'base64').toString('utf8')) : null });
      else inv.finish({ kind: 'success' });
    });
    // A reset connection (the runtime's process died) ends the response as it is.
    req.on('aborted', () => inv.finish({ kind: 'error', errorType: 'Runtime.ResponseStreamAborted', error: null }));
  }

  function invocationError(inv: Running, req: IncomingMessage, res: ServerResponse): void {
    let text = '';
    req.setEncoding('utf8').on('data', (d) => (text += d));
    req.on('end', () => {
      reply(res, 202, { status: 'OK' });
      inv.finish({ kind: 'error', errorType: String(req.headers[ERROR_TYPE] ?? 'Unhandled'), error: text ? JSON.parse(text) : null });
    });
  }

  function initError(req: IncomingMessage, res: ServerResponse): void {
    let text = '';
    req.setEncoding('utf8').on('data', (d) => (text += d));
    req.on('end', () => {
      reply(res, 202, { status: 'OK' });
      // The runtime exits after reporting; the invocation that started it fails with the init error.
      current?.finish({ kind: 'error', errorType: String(req.headers[ERROR_TYPE] ?? 'Runtime.InitError'), error: text ? JSON.parse(text) : null });
    });
  }

  function invoke(event: unknown): Invocation {
    const ended = deferred<InvocationEnd>();
    const done = deferred<InvocationEnd>();
    const contentType = deferred<string>();
    const streamed = deferred<boolean>();
    const inv: Running = {
      requestId: randomUUID(),
      event,
      deadlineMs: 0,
      body: new PassThrough(),
      contentType: contentType.promise,
      streamed: streamed.promise,
      end: ended.promise,
      done: done.promise,
      ended: false,
      setContentType: contentType.resolve,
      setStreamed: streamed.resolve,
      finish(end) {
        if (!inv.ended) {
          inv.ended = true;
          inv.result = end;
          contentType.resolve('');
          streamed.resolve(false);
          if (end.kind === 'success') inv.body.end();
          else inv.body.destroy(Object.assign(new Error(`invocation ended: ${end.kind}`), { end }));
          ended.resolve(end);
        }
        if (end.kind === 'timeout' || end.kind === 'exited') inv.complete(end);
      },
      complete(end) {
        clearTimeout(inv.timer);
        done.resolve(end);
      },
      gone: false,
      droppedBytes: 0,
      dropped: () => inv.droppedBytes,
      disconnect() {
        inv.gone = true;
        inv.body.end();
      },
    };
    // A stream ended by a failure must not crash the test process when nobody reads it.
    inv.body.on('error', () => {});
    queue.push(inv);
    if (!child) start();
    dispatch();
    return inv;
  }

  return {
    address,
    invoke,
    coldStarts: () => starts,
    logs: () => output,
    async close() {
      closed = true;
      const proc = child;
      child = undefined;
      if (proc && proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
