// A streamed call whose client leaves before the answer's first byte (while the proxy still waits for
// OpenAI's headers) is settled at OpenAI's real usage, promptly: the local stack's writer cancels the
// body although the client's 'close' came before it started writing, so the proxy reads the answer
// on, unsent, and settles it; the worst-case hold is released instead of charged at its deadline.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';
import { writeResponse } from '../runtime/local/node-http.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms).unref())]);

// ---------------------------------------------------------------------------------------------------
// Through the local stack, with a raw signed request whose socket the test destroys.

const stackTest = suite('local stack: client gone before the first byte');
const DEADLINE_MS = 30_000;
let t: TestStack;

stackTest.before(async () => {
  t = await startTestStack({ env: { OPENAI_WRAPI_TIMEOUT_MS: String(DEADLINE_MS) } });
});
stackTest.after(async () => {
  await within(t.close(), 5_000, 'closing the stack').catch(() => undefined);
});

/** Signs a request with the stack's signer, without sending it: its URL, headers and body. */
async function signed(path: string, body: unknown, headers: Record<string, string>): Promise<{ url: string; headers: Record<string, string>; body: string }> {
  let captured: { url: string; init: RequestInit } | undefined;
  const original = globalThis.fetch;
  globalThis.fetch = (async (url: string | URL | Request, init?: RequestInit) => {
    captured = { url: String(url), init: init ?? {} };
    return new Response('{}');
  }) as typeof fetch;
  try {
    await t.fetchAs('default')(`${t.stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  } finally {
    globalThis.fetch = original;
  }
  const flat: Record<string, string> = {};
  new Headers(captured!.init.headers).forEach((v, k) => (flat[k] = v));
  return { url: captured!.url, headers: flat, body: String(captured!.init.body) };
}

/** Sends it over node:http; the caller may destroy the socket whenever. */
function send(req: { url: string; headers: Record<string, string>; body: string }): { request: http.ClientRequest; response: Promise<IncomingMessage | Error> } {
  const u = new URL(req.url);
  const request = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers: req.headers, agent: false });
  const response = new Promise<IncomingMessage | Error>((resolve) => {
    request.on('response', resolve);
    request.on('error', resolve);
  });
  request.end(req.body);
  return { request, response };
}

async function upstreamUsage(body: Record<string, unknown>): Promise<{ prompt_tokens: number; completion_tokens: number }> {
  const res = await fetch(`${t.fake.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.fake.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: false }),
  });
  return (await res.json()).usage;
}

const limitOf = async (project: string) => (await t.admin({ action: 'listLimits', project })).limits.find((l: any) => l.user === '*' && l.model === '*');
const rowOf = async (project: string) => (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === project && r.user !== '*');

stackTest('a stream whose client left before the first byte is settled at its exact usage, its hold released, its upstream call finished', async () => {
  const project = 'left-early';
  await t.admin({ action: 'setLimit', project, limit: 5 });
  // o3: a worst-case hold far above the call's real cost. A long answer (more than the sockets buffer),
  // so that OpenAI's side only finishes if the proxy reads it.
  const body = { model: 'o3', stream: true, messages: [{ role: 'user', content: 'Leaving early. fake:words=6000 fake:reasoning=100 fake:delay_first=300' }] };
  const req = await signed('/dev/v1/chat/completions', body, { 'openai-proxy-project': project, 'openai-proxy-caching': '0' });
  const before = t.fake.requests.length;
  const started = Date.now();
  const { request, response } = send(req);
  // Left as soon as the call was forwarded: the proxy is waiting for OpenAI's headers (300 ms).
  await settled(t, async () => t.fake.requests.length === before + 1, 5_000);
  request.destroy();
  assert.instance(await response, Error, 'the client saw no response: it left first');

  // Seconds, on a loaded machine; without the fix it waits for the deadline (then charges the worst case).
  await settled(t, async () => (await rowOf(project))?.requests === 1, DEADLINE_MS / 3).catch(() => {
    throw new Error(`the call was not settled within ${DEADLINE_MS / 3000} s of its client leaving`);
  });
  const row = await rowOf(project);
  const usage = await upstreamUsage(body);
  assert.is(row.requests, 1);
  assert.is(row.estimated, 0, 'OpenAI\'s own usage, read on after the client left');
  assert.is(row.inputTokens, usage.prompt_tokens);
  assert.is(row.outputTokens, usage.completion_tokens);

  const limit = await limitOf(project);
  assert.ok(limit.spend > 0 && limit.spend < 0.1, `charged the real cost, not the worst case: ${limit.spend}`);
  assert.is(limit.committed, limit.spend, 'the worst-case hold was released');

  await settled(t, async () => t.fake.inFlight() === 0, DEADLINE_MS / 3).catch(() => {
    throw new Error(`the upstream call is still in flight ${Date.now() - started} ms in`);
  });
  assert.ok(Date.now() - started < DEADLINE_MS / 2, 'well before the proxy\'s deadline');
});

stackTest('several clients leaving at once: each call settled exactly, the next call served at once', async () => {
  const project = 'left-many';
  await t.admin({ action: 'setLimit', project, limit: 5 });
  const bodies = [1, 2, 3].map((i) => ({ model: 'o3', stream: true, messages: [{ role: 'user', content: `Leaving ${i}. fake:words=20 fake:reasoning=50 fake:delay_first=300` }] }));
  const sent = [];
  // One at a time: `signed` swaps the global fetch while it signs.
  for (const b of bodies) sent.push(await signed('/dev/v1/chat/completions', b, { 'openai-proxy-project': project, 'openai-proxy-caching': '0' }));
  const calls = sent.map(send);
  await sleep(100);
  for (const c of calls) c.request.destroy();
  await Promise.all(calls.map((c) => c.response));
  await settled(t, async () => (await rowOf(project))?.requests === 3, DEADLINE_MS / 3);
  const row = await rowOf(project);
  assert.is(row.estimated, 0);
  const usages = await Promise.all(bodies.map(upstreamUsage));
  assert.is(row.outputTokens, usages.reduce((n, u) => n + u.completion_tokens, 0));
  const limit = await limitOf(project);
  assert.is(limit.committed, limit.spend, 'every hold released');
  const ok = await t.client({ project, caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after them fake:words=3' }] });
  assert.ok(ok.choices[0].message.content);
});

stackTest.run();

// ---------------------------------------------------------------------------------------------------
// writeResponse itself, on a plain node:http server.

const unit = suite('writeResponse: client gone');

/** A server whose handler the test supplies, and a client request to it. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function body(chunk: Uint8Array, count: number) {
  const seen = { pulls: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      seen.pulls++;
      if (seen.pulls > count) c.close();
      else c.enqueue(chunk);
    },
    cancel() {
      seen.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, seen };
}

unit('the response was closed before writing started: the body is cancelled at once, nothing read', async () => {
  const { stream, seen } = body(new TextEncoder().encode('data: x\n\n'), 5);
  let written: Promise<void> | undefined;
  const s = await serve(async (req, res) => {
    req.resume();
    await new Promise<void>((r) => res.once('close', () => r()));
    written = writeResponse(new Response(stream), res);
  });
  const req = http.request({ port: s.port, host: '127.0.0.1', method: 'POST', agent: false });
  req.on('error', () => undefined);
  req.end('x');
  await sleep(50);
  req.destroy();
  await within((async () => { while (!written) await sleep(5); await written; })(), 2_000, 'writeResponse');
  assert.ok(seen.cancelled, 'the body was cancelled');
  assert.is(seen.pulls, 0, 'nothing was read for a client that is gone');
  await s.close();
});

unit('a client that stops reading, then leaves: the wait for drain ends and the body is cancelled', async () => {
  const { stream, seen } = body(new Uint8Array(256 * 1024), 10_000);
  let written: Promise<void> | undefined;
  const s = await serve((req, res) => {
    req.resume();
    written = writeResponse(new Response(stream), res);
  });
  const req = http.request({ port: s.port, host: '127.0.0.1', method: 'POST', agent: false });
  req.on('error', () => undefined);
  req.on('response', (res) => res.pause()); // reads nothing: the server's writes back up
  req.end('x');
  await sleep(300);
  assert.ok(seen.pulls < 10_000, 'backpressure held the producer');
  req.destroy();
  await within((async () => { while (!written) await sleep(5); await written; })(), 2_000, 'writeResponse');
  assert.ok(seen.cancelled);
  await s.close();
});

unit('a client that stays gets the whole body and its end', async () => {
  const { stream, seen } = body(new TextEncoder().encode('abc'), 4);
  const s = await serve((req, res) => {
    req.resume();
    void writeResponse(new Response(stream, { headers: { 'x-test': '1' } }), res);
  });
  const res = await fetch(`http://127.0.0.1:${s.port}/`, { method: 'POST', body: 'x' });
  assert.is(res.headers.get('x-test'), '1');
  assert.is(await res.text(), 'abc'.repeat(4));
  assert.not.ok(seen.cancelled);
  await s.close();
});

unit.run();
