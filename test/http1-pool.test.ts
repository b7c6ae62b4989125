// The lean DynamoDB client's HTTP/1.1 transport (runtime/store/http1-pool.ts) against a raw TCP
// server that answers with scripted bytes: framing (Content-Length, chunked, split anywhere), interim
// answers, connection reuse only after a whole reply, and every malformed or cut reply failing the
// request as retryable, never handing a reply to the wrong request.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHttp1Pool, type Http1Pool } from '../runtime/store/http1-pool.ts';

/** What the server does with one request: bytes to send (in pieces, with pauses), then maybe close. */
type Script = { pieces: (string | Buffer)[]; close?: boolean; pauseMs?: number } | 'hang' | 'close';

interface RawServer {
  port: number;
  /** Requests seen, in order, with the connection number they came on. */
  seen: { conn: number; text: string }[];
  connections(): number;
  close(): Promise<void>;
}

/** A server that reads each request (head + Content-Length body) and answers with the next script. */
async function rawServer(scripts: Script[]): Promise<RawServer> {
  const seen: RawServer['seen'] = [];
  const sockets = new Set<net.Socket>();
  let n = 0;
  const server = net.createServer((socket) => {
    const conn = ++n;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on('data', async (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        seen.push({ conn, text: buf.toString('utf8', 0, end + 4 + length) });
        buf = buf.subarray(end + 4 + length);
        const script = scripts.length > 1 ? scripts.shift()! : scripts[0];
        if (script === 'hang') return;
        if (script === 'close') return void socket.destroy();
        for (const piece of script.pieces) {
          socket.write(piece);
          if (script.pauseMs) await new Promise((r) => setTimeout(r, script.pauseMs));
        }
        if (script.close) socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    connections: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const reply = (body: string, extra = '') =>
  `HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: rid-1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
const request = (body = '{}') => Buffer.from(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
const pool = (s: RawServer, extra: Partial<Parameters<typeof createHttp1Pool>[0]> = {}): Http1Pool =>
  createHttp1Pool({ hostname: '127.0.0.1', port: s.port, secure: false, connectTimeoutMs: 2000, ...extra });
type Failure = Error & { $retryable?: boolean; code?: string };
const failure = (p: Promise<unknown>): Promise<Failure> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: Failure) => e,
  );

const framing = suite('http/1.1 pool: framing');

framing('Content-Length reply: status, request id (any case), body; the connection is reused', async () => {
  const s = await rawServer([{ pieces: [reply('{"a":1}')] }]);
  const p = pool(s);
  for (let i = 0; i < 3; i++) {
    const r = await p.request(request(), 1000);
    assert.is(r.status, 200);
    assert.is(r.requestId, 'rid-1');
    assert.is(r.body.toString(), '{"a":1}');
  }
  assert.is(s.connections(), 1);
  p.destroy();
  await s.close();
});

framing('a reply split at every byte, and a chunked reply, read whole', async () => {
  const body = JSON.stringify({ Attributes: { committed: { N: '123' } }, text: 'é ü' });
  const whole = Buffer.from(reply(body));
  const bytes = [...whole].map((b) => Buffer.from([b]));
  const bodyBytes = Buffer.from(body);
  const chunked = Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    Buffer.from(`5;ext=1\r\n`), bodyBytes.subarray(0, 5), Buffer.from('\r\n'),
    Buffer.from(`${(bodyBytes.length - 5).toString(16)}\r\n`), bodyBytes.subarray(5), Buffer.from('\r\n'),
    Buffer.from('0\r\n\r\n'),
  ]);
  const s = await rawServer([{ pieces: bytes }, { pieces: [...chunked].map((b) => Buffer.from([b])) }, { pieces: [chunked] }]);
  const p = pool(s);
  for (let i = 0; i < 3; i++) assert.is((await p.request(request(), 2000)).body.toString(), body, `reply ${i}`);
  assert.is(s.connections(), 1);
  p.destroy();
  await s.close();
});

framing('100 Continue before the answer is skipped', async () => {
  const s = await rawServer([{ pieces: ['HTTP/1.1 100 Continue\r\n\r\n' + reply('{"ok":true}')] }]);
  const p = pool(s);
  assert.is((await p.request(request(), 1000)).body.toString(), '{"ok":true}');
  p.destroy();
  await s.close();
});

framing('error statuses are replies, not failures', async () => {
  const body = '{"__type":"x#ConditionalCheckFailedException"}';
  const s = await rawServer([{ pieces: [`HTTP/1.1 400 Bad Request\r\nContent-Length: ${body.length}\r\n\r\n${body}`] }]);
  const p = pool(s);
  const r = await p.request(request(), 1000);
  assert.is(r.status, 400);
  assert.is(r.body.toString(), body);
  p.destroy();
  await s.close();
});

const refusals = suite('http/1.1 pool: what it refuses');

refusals('malformed, unframed, ambiguous or cut replies fail as retryable and the connection is dropped', async () => {
  const cases: [string, Script][] = [
    ['not HTTP', { pieces: ['SSH-2.0-OpenSSH\r\n\r\n'] }],
    ['no framing', { pieces: ['HTTP/1.1 200 OK\r\n\r\n{"a":1}'], close: true }],
    ['two different lengths', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'] }],
    ['chunked and a length', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'] }],
    ['gzip', { pieces: ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'] }],
    ['bad chunk size', { pieces: ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'] }],
    ['body cut by close', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a"'], close: true }],
    ['connection reset', 'close'],
  ];
  for (const [name, script] of cases) {
    const s = await rawServer([script, { pieces: [reply('{"next":1}')] }]);
    const p = pool(s);
    const error = await failure(p.request(request(), 1000));
    assert.ok(error.$retryable, `${name}: retryable`);
    // The next request gets the next reply, on a fresh connection.
    assert.is((await p.request(request(), 1000)).body.toString(), '{"next":1}', name);
    assert.is(s.connections(), 2, `${name}: a new connection`);
    p.destroy();
    await s.close();
  }
});

refusals('bytes after a whole reply (or Connection: close) mean the connection is not reused', async () => {
  const s = await rawServer([
    { pieces: [reply('{"a":1}') + 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"x":9}'] },
    { pieces: [reply('{"b":2}', 'Connection: close\r\n')] },
    { pieces: [reply('{"c":3}')] },
  ]);
  const p = pool(s);
  assert.is((await p.request(request(), 1000)).body.toString(), '{"a":1}');
  assert.is((await p.request(request(), 1000)).body.toString(), '{"b":2}', 'not the stray reply');
  assert.is((await p.request(request(), 1000)).body.toString(), '{"c":3}');
  assert.is(s.connections(), 3);
  p.destroy();
  await s.close();
});

refusals('bytes arriving on an idle connection (nobody asked) drop it', async () => {
  const s = await rawServer([{ pieces: [reply('{"a":1}'), reply('{"stray":1}')], pauseMs: 20 }, { pieces: [reply('{"b":2}')] }]);
  const p = pool(s);
  assert.is((await p.request(request(), 1000)).body.toString(), '{"a":1}');
  await new Promise((r) => setTimeout(r, 60)); // the stray reply arrives while the connection is idle
  assert.is((await p.request(request(), 1000)).body.toString(), '{"b":2}');
  assert.is(s.connections(), 2);
  p.destroy();
  await s.close();
});

refusals('no answer within the timeout: TimeoutError, retryable, connection dropped', async () => {
  const s = await rawServer(['hang', { pieces: [reply('{}')] }]);
  const p = pool(s);
  const start = Date.now();
  const error = await failure(p.request(request(), 60));
  const took = Date.now() - start;
  assert.is(error.name, 'TimeoutError');
  assert.ok(error.$retryable);
  assert.ok(took >= 55 && took < 500, `timed out after ${took} ms`);
  assert.is((await p.request(request(), 1000)).status, 200);
  assert.is(s.connections(), 2);
  p.destroy();
  await s.close();
});

refusals('a refused connection fails as retryable with Node\'s code', async () => {
  const s = await rawServer([{ pieces: [reply('{}')] }]);
  await s.close();
  const p = pool(s);
  const error = await failure(p.request(request(), 1000));
  assert.is(error.code, 'ECONNREFUSED');
  assert.ok(error.$retryable);
  p.destroy();
});

refusals('a connection the server closed while idle is not used again', async () => {
  const s = await rawServer([{ pieces: [reply('{"a":1}')], close: true }, { pieces: [reply('{"b":2}')] }]);
  const p = pool(s);
  assert.is((await p.request(request(), 1000)).body.toString(), '{"a":1}');
  await new Promise((r) => setTimeout(r, 20)); // the FIN arrives
  assert.is((await p.request(request(), 1000)).body.toString(), '{"b":2}');
  assert.is(s.connections(), 2);
  p.destroy();
  await s.close();
});

refusals('concurrent requests each get their own reply; destroy fails what is in flight', async () => {
  const s = await rawServer([{ pieces: [reply('{"n":1}')], pauseMs: 5 }]);
  const p = pool(s);
  const replies = await Promise.all(Array.from({ length: 8 }, () => p.request(request(), 1000)));
  assert.ok(replies.every((r) => r.body.toString() === '{"n":1}'));
  assert.ok(s.connections() <= 8);
  await s.close();
  const t = await rawServer(['hang']);
  const q = pool(t);
  const inFlight = failure(q.request(request(), 5000));
  await new Promise((r) => setTimeout(r, 20));
  q.destroy();
  assert.ok((await inFlight).$retryable);
  assert.ok((await failure(q.request(request(), 100))).$retryable);
  p.destroy();
  await t.close();
});

const secure = suite('http/1.1 pool: TLS');

/** A self-signed certificate for 127.0.0.1 (openssl), or undefined when openssl is missing. */
function selfSigned(): { key: Buffer; cert: Buffer } | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

secure('https: replies over TLS with the certificate verified; an untrusted certificate is refused', async () => {
  const pair = selfSigned();
  if (!pair) return console.log('  (openssl not found: TLS case skipped)');
  let connections = 0;
  const server = tls.createServer(pair, (socket) => {
    connections++;
    socket.on('data', () => socket.write(reply('{"tls":true}')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const trusted = createHttp1Pool({ hostname: '127.0.0.1', port, secure: true, connectTimeoutMs: 2000, tls: { ca: pair.cert } });
  for (let i = 0; i < 2; i++) assert.is((await trusted.request(request(), 2000)).body.toString(), '{"tls":true}');
  assert.is(connections, 1, 'kept alive');
  const untrusted = createHttp1Pool({ hostname: '127.0.0.1', port, secure: true, connectTimeoutMs: 2000 });
  const error = await failure(untrusted.request(request(), 2000));
  assert.ok(error.$retryable);
  assert.match(String(error.code), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  trusted.destroy();
  untrusted.destroy();
  await new Promise((resolve) => server.close(resolve));
});

framing.run();
refusals.run();
secure.run();
