// A minimal HTTP/1.1 keep-alive client for the lean DynamoDB client: one request at a time per
// connection, the request written in one piece, the reply read by Content-Length (or chunked). Node's
// ClientRequest/IncomingMessage/Agent machinery costs ~100 µs of CPU per round trip, several times
// the rest of a ledger write, and the ledger sends 8 per proxied request. It keeps the properties the
// ledger relies on: a reply belongs to the request written on its connection (never pipelined, a
// connection is reused only after its reply was read to the last byte), and anything unexpected
// (a malformed or truncated reply, a timeout, a reset) destroys the connection and fails the request
// as retryable, which is safe because every ledger write applies at most once.
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';

export interface Http1PoolOptions {
  hostname: string;
  port: number;
  secure: boolean;
  connectTimeoutMs: number;
  /** An idle connection is not used again after this long (default 20 s). */
  idleTimeoutMs?: number;
  /** Extra TLS options (tests: a private CA). Certificates are always verified. */
  tls?: Pick<tls.ConnectionOptions, 'ca'>;
}

export interface Http1Reply {
  status: number;
  /** `x-amzn-requestid` */
  requestId?: string;
  body: Buffer;
}

export interface Http1Pool {
  /** Sends `request` (head and body, already serialised) and reads the reply within `timeoutMs`. */
  request(request: Buffer, timeoutMs: number): Promise<Http1Reply>;
  destroy(): void;
}

/** A transport failure: the request may or may not have reached the server. */
export class Http1Error extends Error {
  $retryable = true;
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = code === 'ETIMEDOUT' || code === 'ECONNECTTIMEOUT' ? 'TimeoutError' : 'Http1Error';
  }
}

const MAX_HEAD_BYTES = 64 * 1024;
/** DynamoDB answers at most 16 MB (BatchGetItem). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_IDLE = 256; // as node:http's Agent (maxFreeSockets)
const CRLF2 = Buffer.from('\r\n\r\n');

interface Pending {
  resolve(reply: Http1Reply): void;
  reject(error: Error): void;
  /** performance.now() by which the reply must have arrived, and the connection stood. */
  deadline: number;
  connectDeadline: number;
  timeoutMs: number;
}

/**
 * Deadlines are checked by one sweep every SWEEP_MS while requests are in flight, not by a timer per
 * request: arming and clearing a timer costs more than the rest of the round trip's JavaScript.
 * A timeout therefore fires up to SWEEP_MS late.
 */
const SWEEP_MS = 20;

/** One connection and the reply it is reading, if any. */
interface Conn {
  socket: net.Socket;
  pending?: Pending;
  connected: boolean;
  idleSince?: number;
  /** Bytes of the current reply received so far (head not yet complete, or body incomplete). */
  buf?: Buffer;
  head?: { status: number; requestId?: string; bodyStart: number; length: number; chunked: boolean; close: boolean };
}

export function createHttp1Pool(opts: Http1PoolOptions): Http1Pool {
  const idle: Conn[] = [];
  const all = new Set<Conn>();
  const idleTimeoutMs = opts.idleTimeoutMs ?? 20_000;
  let session: Buffer | undefined;
  let destroyed = false;
  let sweeper: NodeJS.Timeout | undefined;

  function sweep(): void {
    const now = performance.now();
    let waiting = false;
    for (const conn of all) {
      const p = conn.pending;
      if (!p) continue;
      if (!conn.connected && now >= p.connectDeadline) {
        fail(conn, new Http1Error(`no connection to DynamoDB within ${opts.connectTimeoutMs} ms`, 'ECONNECTTIMEOUT'));
      } else if (now >= p.deadline) {
        fail(conn, new Http1Error(`DynamoDB did not answer within ${p.timeoutMs} ms`, 'ETIMEDOUT'));
      } else waiting = true;
    }
    if (!waiting) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  function open(): Conn {
    const socket = opts.secure
      ? tls.connect({
          ...opts.tls,
          host: opts.hostname,
          port: opts.port,
          servername: net.isIP(opts.hostname) ? undefined : opts.hostname,
          session,
          rejectUnauthorized: true,
        })
      : net.connect({ host: opts.hostname, port: opts.port });
    const conn: Conn = { socket, connected: false };
    all.add(conn);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    if (opts.secure) socket.on('session', (s: Buffer) => (session = s));
    socket.once(opts.secure ? 'secureConnect' : 'connect', () => (conn.connected = true));
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => fail(conn, new Http1Error(error.message, error.code ?? 'ECONNRESET')));
    socket.on('end', () => fail(conn, new Http1Error('DynamoDB closed the connection before its answer ended', 'ECONNRESET')));
    socket.on('close', () => fail(conn, new Http1Error('connection closed before the answer ended', 'ECONNRESET')));
    return conn;
  }

  /** Ends the connection; its request, if any, fails with `error`. */
  function fail(conn: Conn, error?: Error): void {
    const p = conn.pending;
    conn.pending = undefined;
    if (all.delete(conn)) {
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
      conn.socket.destroy();
    }
    if (p) p.reject(error ?? new Http1Error('connection closed', 'ECONNRESET'));
  }

  function onData(conn: Conn, chunk: Buffer): void {
    if (!conn.pending) return fail(conn); // bytes nobody asked for: the connection is out of step
    const buf = conn.buf ? Buffer.concat([conn.buf, chunk]) : chunk;
    let head = conn.head;
    if (!head) {
      const end = buf.indexOf(CRLF2);
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) return fail(conn, new Http1Error('reply head too large', 'EPROTO'));
        conn.buf = buf;
        return;
      }
      const parsed = parseHead(buf.toString('latin1', 0, end));
      if (!parsed) return fail(conn, new Http1Error('malformed reply from DynamoDB', 'EPROTO'));
      if (parsed.status < 200) {
        // 100 Continue and other interim answers: skip, the real one follows.
        conn.buf = undefined;
        if (buf.length > end + 4) onData(conn, buf.subarray(end + 4));
        return;
      }
      head = conn.head = { ...parsed, bodyStart: end + 4 };
    }
    const body = head.chunked ? dechunk(buf, head.bodyStart) : buf.length - head.bodyStart >= head.length
      ? { body: buf.subarray(head.bodyStart, head.bodyStart + head.length), end: head.bodyStart + head.length }
      : undefined;
    if (body === null) return fail(conn, new Http1Error('malformed chunked reply from DynamoDB', 'EPROTO'));
    if (body === undefined) {
      if (buf.length - head.bodyStart > MAX_BODY_BYTES) return fail(conn, new Http1Error('reply too large', 'EPROTO'));
      conn.buf = buf;
      return;
    }
    const p = conn.pending;
    const reusable = !head.close && body.end === buf.length && !destroyed;
    conn.pending = conn.buf = conn.head = undefined;
    if (reusable) release(conn);
    else fail(conn);
    p.resolve({ status: head.status, requestId: head.requestId, body: body.body });
  }

  function release(conn: Conn): void {
    if (idle.length >= MAX_IDLE) return fail(conn);
    conn.idleSince = Date.now();
    conn.socket.unref(); // an idle pool does not keep the process alive
    idle.push(conn);
  }

  /** The most recently used idle connection (the least likely to have been closed), or a new one. */
  function take(): Conn {
    for (let conn = idle.pop(); conn; conn = idle.pop()) {
      if (Date.now() - conn.idleSince! <= idleTimeoutMs) {
        conn.socket.ref();
        return conn;
      }
      fail(conn);
    }
    return open();
  }

  return {
    request(request, timeoutMs) {
      if (destroyed) return Promise.reject(new Http1Error('the DynamoDB client was destroyed', 'EDESTROYED'));
      return new Promise<Http1Reply>((resolve, reject) => {
        const c = take();
        const now = performance.now();
        c.pending = { resolve, reject, deadline: now + timeoutMs, connectDeadline: now + opts.connectTimeoutMs, timeoutMs };
        if (!sweeper) {
          sweeper = setInterval(sweep, SWEEP_MS);
          sweeper.unref(); // the connection in use keeps the process alive
        }
        c.socket.write(request);
      });
    },
    destroy() {
      destroyed = true;
      clearInterval(sweeper);
      for (const conn of [...all]) fail(conn, new Http1Error('the DynamoDB client was destroyed', 'EDESTROYED'));
    },
  };
}

/**
 * Status, request id and framing of a reply head; undefined when it is not HTTP/1.x or cannot be
 * framed. Only the four headers this client needs are looked at, found by their line start in the
 * lowercased head (a header line cannot hold a CRLF, so a match is always a whole header name).
 */
function parseHead(text: string): { status: number; requestId?: string; length: number; chunked: boolean; close: boolean } | undefined {
  const m = STATUS_LINE.exec(text);
  if (!m) return undefined;
  const lower = text.toLowerCase();
  const lengths = values(text, lower, '\r\ncontent-length:');
  const encodings = values(text, lower, '\r\ntransfer-encoding:');
  const connection = values(text, lower, '\r\nconnection:').join(',').toLowerCase().split(',').map((t) => t.trim());
  const requestId = values(text, lower, '\r\nx-amzn-requestid:')[0];
  const status = Number(m[2]);
  const close = connection.includes('close') || (m[1] === '0' && !connection.includes('keep-alive'));
  if (status < 200) return { status, requestId, length: 0, chunked: false, close }; // interim: no body
  if (encodings.length > 0) {
    // gzip and the like are never asked for; chunked with a length is ambiguous (request smuggling).
    if (encodings.length !== 1 || encodings[0].toLowerCase() !== 'chunked' || lengths.length > 0) return undefined;
    return { status, requestId, length: 0, chunked: true, close };
  }
  if (lengths.length === 0) {
    // No framing: the body would run to the end of the connection. DynamoDB always frames its
    // answers, so such a reply is refused rather than read until close.
    return status === 204 || status === 304 ? { status, requestId, length: 0, chunked: false, close } : undefined;
  }
  if (!lengths.every((v) => v === lengths[0]) || !/^\d{1,9}$/.test(lengths[0]) || Number(lengths[0]) > MAX_BODY_BYTES) return undefined;
  return { status, requestId, length: Number(lengths[0]), chunked: false, close };
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?(?:\r\n|$)/;

/** Trimmed values of every header line starting with `prefix` (lowercase, with CRLF and colon). */
function values(text: string, lower: string, prefix: string): string[] {
  const out: string[] = [];
  for (let at = lower.indexOf(prefix); at >= 0; at = lower.indexOf(prefix, at + prefix.length)) {
    const end = text.indexOf('\r\n', at + prefix.length);
    out.push(text.slice(at + prefix.length, end < 0 ? text.length : end).trim());
  }
  return out;
}

/**
 * The body of a chunked reply from `start`, once complete (`end` = the index after it); undefined
 * while more is to come; null when malformed.
 */
function dechunk(buf: Buffer, start: number): { body: Buffer; end: number } | undefined | null {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return buf.length - at > 1024 ? null : undefined;
    const m = /^([0-9a-fA-F]{1,8})(?:;.*)?$/.exec(buf.toString('latin1', at, eol));
    if (!m) return null;
    const size = parseInt(m[1], 16);
    if (size === 0) {
      // Trailers (none expected), then the final empty line.
      let t = eol + 2;
      for (;;) {
        const next = buf.indexOf('\r\n', t, 'latin1');
        if (next < 0) return undefined;
        if (next === t) return { body: parts.length === 1 ? parts[0] : Buffer.concat(parts), end: next + 2 };
        t = next + 2;
      }
    }
    if (buf.length < eol + 2 + size + 2) return undefined;
    if (buf[eol + 2 + size] !== 13 || buf[eol + 3 + size] !== 10) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 4 + size;
  }
}
