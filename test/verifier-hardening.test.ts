// The local stack's door, tried as an attacker with a signed key would (issue 10, items 4–9):
// presigned URLs are short-lived and their signature never reaches OpenAI; headers that decide who
// pays must be signed; malformed names and absurdly nested bodies are clear 4xx errors, never a 500;
// a revoked stage key is reported as the admin's problem without a trace of the key.
import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { loadOrCreateCredentials } from '../runtime/local/credentials.ts';
import { settled, startTestStack, type TestStack } from './helpers/stack.ts';

let t: TestStack;
let signer: SignatureV4;

test.before(async () => {
  t = await startTestStack();
  await t.admin({ action: 'setLimit', project: 'door', limit: 1 });
  await t.admin({ action: 'setLimit', project: 'victim', limit: 1 });
  const me = (await loadOrCreateCredentials(t.home)).users.find((u) => u.name === 'default')!;
  signer = new SignatureV4({
    credentials: { accessKeyId: me.accessKeyId, secretAccessKey: me.secretAccessKey }, region: 'us-east-1', service: 'lambda', sha256: Sha256,
  });
});
test.after(() => t.close());

const url = () => new URL(t.stack.url);

/** Signs a POST whose signed headers are exactly `headers` (plus host), then sends it with `extra` added. */
async function post(path: string, body: string, headers: Record<string, string>, extra: Record<string, string> = {}) {
  const { hostname, port } = url();
  const signed = await signer.sign({
    method: 'POST', protocol: 'http:', hostname, port: Number(port), path, query: {},
    headers: { host: `${hostname}:${port}`, 'content-type': 'application/json', ...headers }, body,
  });
  const res = await fetch(`${t.stack.url}${path}`, { method: 'POST', headers: { ...signed.headers, ...extra }, body });
  return { status: res.status, body: (await res.json()) as any };
}

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

test('a billing header added after signing is refused: a captured request cannot be re-billed to another project', async () => {
  const before = t.fake.requests.length;
  const signedProject = await post('/dev/v1/chat/completions', chat, { 'openai-proxy-project': 'door' });
  assert.is(signedProject.status, 200, JSON.stringify(signedProject.body));
  const replayed = await post('/dev/v1/chat/completions', chat, {}, { 'openai-proxy-project': 'victim' });
  assert.is(replayed.status, 403);
  assert.match(replayed.body.error.message, /'openai-proxy-project' must be signed/);
  const caching = await post('/dev/v1/chat/completions', chat, { 'openai-proxy-project': 'door' }, { 'openai-proxy-caching': '0' });
  assert.is(caching.status, 403);
  assert.is(t.fake.requests.length, before + 1, 'only the properly signed call went out');
});

test("a presigned URL's X-Amz-* parameters never reach OpenAI, and its lifetime is 15 minutes at most", async () => {
  const { hostname, port } = url();
  const presigned = async (expiresIn: number) => {
    const req = await signer.presign(
      { method: 'GET', protocol: 'http:', hostname, port: Number(port), path: '/dev/v1/models', query: {}, headers: { host: `${hostname}:${port}` } },
      { expiresIn },
    );
    return `${t.stack.url}${req.path}?${new URLSearchParams(req.query as Record<string, string>)}`;
  };
  const ok = await fetch(await presigned(600));
  assert.is(ok.status, 200);
  const seen = t.fake.requests.at(-1)!;
  assert.is(seen.path, '/v1/models');
  assert.not.match(seen.search, /x-amz-/i, seen.search);
  const long = await fetch(await presigned(3600));
  assert.is(long.status, 403);
});

test('bad names and absurd bodies are clear 4xx errors, not 500s, and nothing goes out', async () => {
  const before = t.fake.requests.length;
  const badName = await post('/2015-03-31/functions/%E0%A4%A/invocations', '{}', {});
  assert.is(badName.status, 404, JSON.stringify(badName.body));
  // Written as text: JSON.stringify itself would overflow on a value this deep.
  const deep = `{"model":"gpt-4o-mini","messages":${'['.repeat(20_000)}"hi"${']'.repeat(20_000)}}`;
  const nested = await post('/dev/v1/chat/completions', deep, { 'openai-proxy-project': 'door' });
  assert.is(nested.status, 400, JSON.stringify(nested.body));
  assert.is(nested.body.error.code, 'invalid_json');
  const meta = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], metadata: JSON.parse('{"a":'.repeat(100) + '1' + '}'.repeat(100)) });
  assert.is((await post('/dev/v1/chat/completions', meta, { 'openai-proxy-project': 'door' })).status, 400);
  assert.is(t.fake.requests.length, before);
});

test('an oversized body announced with Expect: 100-continue is refused before it is sent: the client reads the 413', async () => {
  const { hostname, port } = url();
  const size = 6.5 * 1024 * 1024;
  const outcome = await new Promise<{ status?: number; continued: boolean; error?: string }>((resolve) => {
    let continued = false;
    const req = request(
      { host: hostname, port, method: 'POST', path: '/dev/v1/chat/completions', headers: { expect: '100-continue', 'content-length': size } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, continued }));
      },
    );
    req.on('continue', () => {
      continued = true;
      req.end(Buffer.alloc(size, 120));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ continued, error: e.code }));
  });
  assert.equal(outcome, { status: 413, continued: false });
});

test("a revoked stage key: the caller is told an admin must replace it, never OpenAI's 401 with the key's tail", async () => {
  const s = await startTestStack({ env: { OPENAI_API_KEY: 'sk-proj-revokedRevokedRevoked1234' } });
  const lines: string[] = [];
  try {
    await s.admin({ action: 'setLimit', project: 'p', limit: 1 });
    for (const call of [
      () => s.client({ project: 'p', caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      () => s.client({ project: 'p' }).models.list(),
    ]) {
      const err: any = await call().catch((e) => e);
      assert.is(err.status, 502);
      assert.is(err.code, 'stage_key_rejected');
      assert.match(err.message, /rejected stage dev's API key/);
      assert.not.match(JSON.stringify(err.error) + err.message, /1234|sk-proj/);
      lines.push(err.headers.get('x-should-retry'));
    }
    assert.equal(lines, ['false', 'false'], 'the client does not retry what only an admin can fix');
    await settled(s, async () => (await s.admin({ action: 'usage' })).totals.errors === 1);
    const { totals } = await s.admin({ action: 'usage' });
    assert.equal([totals.requests, totals.errors, totals.spend], [0, 1, 0]);
  } finally {
    await s.close();
  }
});

test.run();
