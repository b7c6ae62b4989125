// The public URL, tried as a browser page and as someone who wants to spend past it would: the
// official `openai` client (unsigned, with an Origin) through the local stack's /public/<stage>/v1,
// plain HTTP from other loopback addresses (other clients), and the settings' checks.
import { request } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { ConfigError } from '../runtime/core/config.ts';
import { clientOf, createPublicProxy, readPublicAccess, type PublicAccess } from '../runtime/core/public-access.ts';
import type { CallContext, ProxyRequest } from '../runtime/core/proxy.ts';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

const ORIGIN = 'http://app.localhost:5173';
const PROJECT = 'website';

// ------------------------------------------------------------------------------------- settings

const settings = suite('public access: settings and clients');

settings('no public project, no public URL; a complete one reads back', () => {
  assert.is(readPublicAccess({ OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN, OPENAI_WRAPI_PUBLIC_RPM: '5' }), undefined);
  const access = readPublicAccess({
    OPENAI_WRAPI_PUBLIC_PROJECT: PROJECT,
    OPENAI_WRAPI_PUBLIC_ORIGINS: `${ORIGIN}, https://example.com/`,
    OPENAI_WRAPI_PUBLIC_TPM: '4000',
  });
  assert.equal(access, { project: PROJECT, origins: [ORIGIN, 'https://example.com'], perClient: { tpm: 4000 }, routes: ['chat', 'responses'] });
  const withEmbeddings = readPublicAccess({ OPENAI_WRAPI_PUBLIC_PROJECT: 'p', OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN, OPENAI_WRAPI_PUBLIC_RPM: '1', OPENAI_WRAPI_PUBLIC_EMBEDDINGS: '1' });
  assert.equal(withEmbeddings?.routes, ['chat', 'responses', 'embeddings']);
});

settings('bad settings are all named at once: "*", a path, no per-client limit, a zero', () => {
  const problems = (env: Record<string, string>) => {
    try {
      readPublicAccess({ OPENAI_WRAPI_PUBLIC_PROJECT: PROJECT, ...env });
    } catch (err) {
      assert.instance(err, ConfigError);
      return (err as ConfigError).problems.join('\n');
    }
    throw new Error('accepted');
  };
  const all = problems({ OPENAI_WRAPI_PUBLIC_ORIGINS: '*, https://example.com/app, ftp://x.test' });
  assert.match(all, /cannot be "\*"/);
  assert.match(all, /"https:\/\/example.com\/app" is not an origin/);
  assert.match(all, /"ftp:\/\/x.test" is not an origin/);
  assert.match(all, /set OPENAI_WRAPI_PUBLIC_RPM or OPENAI_WRAPI_PUBLIC_TPM/);
  assert.match(problems({ OPENAI_WRAPI_PUBLIC_RPM: '5' }), /OPENAI_WRAPI_PUBLIC_ORIGINS must list the origins/);
  assert.match(problems({ OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN, OPENAI_WRAPI_PUBLIC_RPM: '0' }), /OPENAI_WRAPI_PUBLIC_RPM must be a whole number >= 1/);
  assert.match(problems({ OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN, OPENAI_WRAPI_PUBLIC_TPM: '2.5' }), /OPENAI_WRAPI_PUBLIC_TPM must be a whole number/);
});

settings('a client is an IPv4 address or an IPv6 /64: fresh addresses in one network are one client', () => {
  assert.is(clientOf('203.0.113.10'), '203.0.113.10');
  assert.is(clientOf('::ffff:203.0.113.10'), '203.0.113.10');
  const net = '2001:db8:85a3:42::/64';
  for (const ip of ['2001:db8:85a3:42::1', '2001:0db8:85a3:0042:ffff:ffff:ffff:fffe', '2001:DB8:85A3:42:0:0:0:7', '2001:db8:85a3:42::a:192.0.2.1']) {
    assert.is(clientOf(ip), net, ip);
  }
  assert.is(clientOf('2001:db8::1'), '2001:db8:0:0::/64');
  assert.is(clientOf('::1'), '0:0:0:0::/64');
  assert.is.not(clientOf('2001:db8:85a3:43::1'), net, 'the next /64 is someone else');
  for (const junk of ['', 'not an ip', '1:2:3:4:5:6:7:8:9', '2001:db8::1::2', 'g::1']) assert.is(clientOf(junk), 'unknown', junk);
});

settings('the front: Origin and route checked before the proxy; the project header ignored; per-client limits handed on', async () => {
  const access: PublicAccess = { project: PROJECT, origins: [ORIGIN], perClient: { rpm: 2 }, routes: ['chat', 'responses'] };
  const seen: { req: ProxyRequest; ctx: CallContext }[] = [];
  const front = createPublicProxy(async (req, ctx) => (seen.push({ req, ctx }), new Response('{}', { status: 200 })), access, { cors: false });
  const call = (path: string, headers: Record<string, string>, method = 'POST') =>
    front({ req: new Request(`http://x${path}`, { method, headers }), sourceIp: '198.51.100.7', waitUntil: () => undefined, body: new Uint8Array() });

  const noOrigin = await call('/v1/chat/completions', {});
  assert.is(noOrigin.status, 403);
  assert.is((await noOrigin.json()).error.code, 'origin_not_allowed');
  const lookalike = await call('/v1/chat/completions', { origin: `${ORIGIN}.evil.test` });
  assert.is(lookalike.status, 403);
  for (const path of ['/v1/models', '/v1/moderations', '/v1/embeddings', '/v1/completions', '/2015-03-31/functions/openai-admin-dev/invocations']) {
    const r = await call(path, { origin: ORIGIN }, path === '/v1/models' ? 'GET' : 'POST');
    assert.is(r.status, 403, path);
    assert.is((await r.json()).error.code, 'route_not_public');
  }
  assert.is(seen.length, 0, 'nothing refused reached the proxy');

  const ok = await call('/v1/chat/completions', { origin: ORIGIN, 'openai-proxy-project': 'someone-elses' });
  assert.is(ok.status, 200);
  assert.is(ok.headers.get('access-control-allow-origin'), null, 'on AWS the function URL adds CORS, not the front');
  assert.equal(seen[0].ctx.caller.user, 'public:198.51.100.7');
  assert.equal(seen[0].ctx.publicClient, { project: PROJECT, limits: { rpm: 2 } });
});

settings.run();

// ---------------------------------------------------------------------------- the local stack

const stack = suite('public access: the local stack end to end');
let t: TestStack;
let offset = 0;
const clock = () => Date.now() + offset;
/** Moves the stack's clock to `seconds` into the next minute: a fresh rate window. */
function atSecond(seconds: number): void {
  offset = (Math.floor(clock() / 60_000) + 1) * 60_000 + seconds * 1000 - Date.now();
}

stack.before(async () => {
  t = await startTestStack({
    env: {
      OPENAI_WRAPI_PUBLIC_PROJECT: PROJECT,
      OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN,
      OPENAI_WRAPI_PUBLIC_RPM: '3',
      OPENAI_WRAPI_PUBLIC_TPM: '3000',
    },
    stack: { now: clock },
  });
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 1 });
});
stack.after(() => t?.close());

const publicUrl = () => `${t.stack.url}/public/dev/v1`;

/** The official client as a page would use it: any key (the proxy uses the stage's), an Origin. */
function browserClient(opts: { maxRetries?: number; origin?: string; headers?: Record<string, string> } = {}): { client: OpenAI; attempts: () => number } {
  let attempts = 0;
  const client = new OpenAI({
    apiKey: 'sk-not-a-real-key',
    baseURL: publicUrl(),
    maxRetries: opts.maxRetries ?? 0,
    fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
      attempts++;
      return fetch(input, init);
    }) as typeof fetch,
    defaultHeaders: { ...(opts.origin === '' ? {} : { origin: opts.origin ?? ORIGIN }), 'openai-proxy-caching': '0', ...opts.headers },
  });
  return { client, attempts: () => attempts };
}

/** A raw POST from a given loopback address: another client, as far as the stack can tell. */
function postFrom(localAddress: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string>; body: any }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${t.stack.url}${path}`, {
      method: 'POST', localAddress,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)), origin: ORIGIN, 'openai-proxy-caching': '0', ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string>, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** A page caps its output: with a per-client TPM, the worst case of an uncapped call (the model's whole output) is held. */
const say = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }], max_completion_tokens: 200, ...extra,
});

async function usage(): Promise<{ project: string; user: string; requests: number; spend: number }[]> {
  const report = await t.admin({ action: 'usage' });
  return report.rows;
}
const publicRows = async () => (await usage()).filter((r) => r.project === PROJECT);

stack('a page\'s call is billed to the public project as public:<address>, whatever project it names', async () => {
  atSecond(1);
  const { client } = browserClient({ headers: { 'openai-proxy-project': 'research' } });
  const { data, response } = await client.chat.completions.create(say('hello fake:words=4')).withResponse();
  assert.is(data.choices[0].message.content!.split(' ').length, 4);
  assert.is(response.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(response.headers.get('access-control-expose-headers')!, /x-ratelimit-remaining-requests/);
  assert.is(response.headers.get('x-ratelimit-remaining-requests'), '2');
  assert.is(response.headers.get('openai-proxy-budget-scope'), 'project=website user=* model=*');
  // The stage's key went up, not the page's.
  assert.is(t.fake.requests.at(-1)!.headers.authorization, `Bearer ${t.fake.apiKey}`);
  await settled(t, async () => (await publicRows()).some((r) => r.user === 'public:127.0.0.1' && r.requests === 1));
  assert.not.ok((await usage()).some((r) => r.project === 'research'), 'nothing billed to the project the page named');
});

stack('streaming works as a page reads it', async () => {
  const { client } = browserClient();
  const stream = await client.chat.completions.create({ ...say('stream fake:words=6'), stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.is(text.trim().split(' ').length, 6);
});

stack('per client: an RPM of 3 refuses the 4th call with OpenAI\'s 429, and the client\'s retry succeeds after the window', async () => {
  atSecond(5);
  const { client } = browserClient();
  for (let i = 0; i < 3; i++) await client.chat.completions.create(say(`fill ${i}`));
  const refused = await client.chat.completions.create(say('the fourth')).catch((e) => e);
  assert.instance(refused, OpenAI.RateLimitError);
  assert.is(refused.code, 'rate_limit_exceeded');
  assert.match(refused.message, /user "public:127.0.0.1".*Limit 3, Used 3/);
  assert.match(refused.message, /publicAccess.rpmPerClient/);
  const h = refused.headers as Headers;
  assert.is(h.get('x-ratelimit-limit-requests'), '3');
  assert.is(h.get('x-ratelimit-remaining-requests'), '0');
  assert.ok(Number(h.get('retry-after')) >= 50);
  assert.is(h.get('access-control-allow-origin'), ORIGIN, 'a page can read the refusal');

  // Another address is another client, with its own window...
  const other = await postFrom('127.0.0.2', '/public/dev/v1/chat/completions', say('from elsewhere'));
  assert.is(other.status, 200, JSON.stringify(other.body));
  assert.is(other.headers['x-ratelimit-remaining-requests'], '2');
  // ...and a forwarding header names nobody.
  const spoofed = await postFrom('127.0.0.1', '/public/dev/v1/chat/completions', say('spoof'), { 'x-forwarded-for': '198.51.100.9' });
  assert.is(spoofed.status, 429);

  // 1.5 s before the window ends the client is told to wait 2 s, waits, and is served.
  offset += (Math.floor(clock() / 60_000) * 60_000 + 58_500) - clock();
  const retrying = browserClient({ maxRetries: 2 });
  const answer = await retrying.client.chat.completions.create(say('patient'));
  assert.ok(answer.choices[0].message.content);
  assert.is(retrying.attempts(), 2, 'refused once, then served');
});

stack('an admin can hold one client tighter than the setting: the tighter limit wins', async () => {
  atSecond(5);
  await t.admin({ action: 'setLimit', project: PROJECT, user: 'public:127.0.0.5', rpm: 1 });
  const first = await postFrom('127.0.0.5', '/public/dev/v1/chat/completions', say('one'));
  assert.is(first.status, 200);
  assert.is(first.headers['x-ratelimit-limit-requests'], '1');
  const second = await postFrom('127.0.0.5', '/public/dev/v1/chat/completions', say('two'));
  assert.is(second.status, 429);
  assert.match(second.body.error.message, /Limit 1, Used 1/);
  const neighbour = await postFrom('127.0.0.6', '/public/dev/v1/chat/completions', say('three'));
  assert.is(neighbour.headers['x-ratelimit-limit-requests'], '3', 'other clients keep the setting');
});

stack('per client: a TPM holds the worst case while a call runs', async () => {
  atSecond(5);
  const big = await postFrom('127.0.0.3', '/public/dev/v1/chat/completions', say('big', { max_completion_tokens: 5_000 }));
  assert.is(big.status, 429);
  assert.is(big.body.error.type, 'tokens');
  assert.is(big.headers['x-should-retry'], 'false', 'it can never fit the per-client TPM');
  const fits = await postFrom('127.0.0.3', '/public/dev/v1/chat/completions', say('small fake:words=5', { max_completion_tokens: 100 }));
  assert.is(fits.status, 200);
  assert.is(fits.headers['x-ratelimit-limit-tokens'], '3000');
  await settled(t, async () => (await publicRows()).some((r) => r.user === 'public:127.0.0.3' && r.requests === 1));
});

stack('no allowed Origin, a route it does not serve: 403 and nothing billed or forwarded', async () => {
  const forwarded = t.fake.requests.length;
  // Every call forwarded so far has settled (each is one request in the report).
  await settled(t, async () => (await usage()).reduce((n, r) => n + r.requests, 0) === forwarded);
  const before = JSON.stringify(await usage());
  const none = await browserClient({ origin: '' }).client.chat.completions.create(say('no origin')).catch((e) => e);
  assert.instance(none, OpenAI.PermissionDeniedError);
  assert.is(none.code, 'origin_not_allowed');
  const other = await browserClient({ origin: 'https://evil.example' }).client.chat.completions.create(say('evil')).catch((e) => e);
  assert.is(other.status, 403);
  assert.is(other.headers.get('access-control-allow-origin'), null, 'a page elsewhere cannot even read why');
  const models = await browserClient().client.models.list().catch((e) => e);
  assert.is(models.status, 403);
  const embeddings = await browserClient().client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).catch((e) => e);
  assert.is(embeddings.code, 'route_not_public');
  // A preflight from an allowed origin is answered; from another, refused.
  const preflight = await fetch(`${publicUrl()}/chat/completions`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
  assert.is(preflight.status, 204);
  assert.match(preflight.headers.get('access-control-allow-headers')!, /authorization/);
  const badPreflight = await fetch(`${publicUrl()}/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  assert.is(badPreflight.status, 403);
  assert.is(t.fake.requests.length, forwarded);
  assert.is(JSON.stringify(await usage()), before);
});

stack('the project\'s budget is the ceiling over every client: a budget refusal is final', async () => {
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 0.000001 });
  const { client, attempts } = browserClient({ maxRetries: 2 });
  const err = await client.chat.completions.create(say('over budget')).catch((e) => e);
  assert.is(err.code, 'budget_exceeded');
  assert.is(err.headers.get('x-should-retry'), 'false');
  assert.is(attempts(), 1);
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 1 });
});

stack('a project with members still serves the public URL (its setting is the grant), and only it', async () => {
  await t.user('alice');
  assert.ok((await t.admin({ action: 'grantMember', project: PROJECT, user: 'alice' })).ok);
  try {
    const r = await postFrom('127.0.0.4', '/public/dev/v1/chat/completions', say('members'));
    assert.is(r.status, 200, JSON.stringify(r.body));
    const bob = await t.client({ user: 'default', project: PROJECT }).chat.completions.create(say('signed, not a member')).catch((e) => e);
    assert.is(bob.code, 'project_access_denied');
  } finally {
    await t.admin({ action: 'revokeMember', project: PROJECT, user: 'alice' });
  }
});

stack('the signed proxy is unchanged: no signature, no call', async () => {
  const r = await fetch(`${t.stack.url}/dev/v1/chat/completions`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/json' }, body: JSON.stringify(say('x')) });
  assert.is(r.status, 403);
  assert.is((await r.json()).error.code, 'invalid_signature');
});

stack.run();

// ------------------------------------------------------------------ a stack without the setting

const off = suite('public access: off unless configured');
off('without the public variables /public/ is not served', async () => {
  const plain = await startTestStack();
  try {
    const r = await fetch(`${plain.stack.url}/public/dev/v1/chat/completions`, { method: 'POST', headers: { origin: ORIGIN }, body: '{}' });
    assert.is(r.status, 404);
    assert.is(plain.stack.publicAccess, undefined);
  } finally {
    await plain.close();
  }
});
off.run();
