/**
 * The local stack's SigV4 verifier against requests signed by @smithy/signature-v4 (the signer
 * inside the AWS SDK and our SDK), AWS's published example vectors, and the credentials file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { fromIni } from '@aws-sdk/credential-providers';
import { computeSignature, createVerifier, type SignedRequestParts } from '../runtime/local/sigv4.ts';
import {
  addUser, formatCredentials, loadOrCreateCredentials, lookupByAccessKey, parseCredentials, userArn,
  type LocalUser,
} from '../runtime/local/credentials.ts';

const NOW = Date.UTC(2025, 4, 6, 7, 8, 9);
const REGION = 'us-east-1';
const HOST = '127.0.0.1:8787';
const alice: LocalUser = {
  name: 'alice', accessKeyId: 'AKIAALICE00000000001', secretAccessKey: 'a'.repeat(20) + '/B+c'.repeat(5), admin: false,
};
const root: LocalUser = {
  name: 'default', accessKeyId: 'AKIAROOT000000000001', secretAccessKey: 'r'.repeat(40), admin: true,
};
const verify = createVerifier({ lookup: lookupByAccessKey([alice, root]), region: REGION, now: () => NOW });
const enc = new TextEncoder();

/** smithy's wire encoding of a query (what its fetch/node handlers send). */
const escapeUri = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

interface SignOpts {
  method?: string;
  path?: string;
  query?: Record<string, string | string[]>;
  rawQuery?: string;
  headers?: Record<string, string>;
  body?: string;
  user?: LocalUser;
  service?: string;
  region?: string;
  date?: number;
  applyChecksum?: boolean;
  signableHeaders?: Set<string>;
}

/** Signs like the AWS SDK does, and returns the request as the local stack's server sees it. */
async function signed(o: SignOpts = {}): Promise<SignedRequestParts> {
  const user = o.user ?? alice;
  const signer = new SignatureV4({
    credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey },
    region: o.region ?? REGION,
    service: o.service ?? 'lambda',
    sha256: Sha256,
    applyChecksum: o.applyChecksum ?? true,
  });
  const body = o.body ?? JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  const query = o.query ?? {};
  const req = await signer.sign(
    {
      method: o.method ?? 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 8787,
      path: o.path ?? '/dev/v1/chat/completions',
      query,
      headers: {
        host: HOST,
        'content-type': 'application/json',
        'openai-proxy-project': 'research',
        'user-agent': 'OpenAI/JS 6.30.1',
        ...o.headers,
      },
      body,
    },
    { signingDate: new Date(o.date ?? NOW), signableHeaders: o.signableHeaders },
  );
  const rawQuery =
    o.rawQuery ??
    Object.entries(query)
      .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${escapeUri(k)}=${escapeUri(x)}`))
      .join('&');
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method: req.method, path: req.path, query: rawQuery, headers, body: enc.encode(body) };
}

async function denied(req: SignedRequestParts, message: RegExp): Promise<void> {
  const r = await verify(req);
  if (r.ok) assert.unreachable(`expected 403 matching ${message}, got ok`);
  else {
    assert.is(r.status, 403);
    assert.match(r.message, message);
  }
}

async function rejects(p: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.instance(err, Error);
  assert.match((err as Error).message, message);
}

// ---- valid requests -----------------------------------------------------------------------------

test('a smithy-signed POST verifies and names the user', async () => {
  const req = await signed();
  assert.match(req.headers.authorization, /SignedHeaders=content-type;host;openai-proxy-project;x-amz-content-sha256;x-amz-date,/);
  const r = await verify(req);
  assert.ok(r.ok);
  if (r.ok) assert.is(r.user, alice);
  const r2 = await verify(await signed({ user: root }));
  assert.ok(r2.ok && r2.user.admin);
});

test('without x-amz-content-sha256 the verifier hashes the body itself', async () => {
  const req = await signed({ applyChecksum: false });
  assert.is(req.headers['x-amz-content-sha256'], undefined);
  assert.ok((await verify(req)).ok);
});

test('special characters in query and path, repeated keys, GET without body', async () => {
  const query = { after: 'a b+c/é', "x*y": "it's (ok)!", empty: '', tag: ['z', 'a'], '~_.-': '~' };
  assert.ok((await verify(await signed({ method: 'GET', body: '', path: '/dev/v1/models', query }))).ok);
  const path = '/dev/v1/files/file%20a%3Ab/content';
  assert.ok((await verify(await signed({ method: 'GET', body: '', path, query }))).ok);
  // The raw query's parameter order does not matter: the canonical form sorts them.
  assert.ok((await verify(await signed({ query: { b: '1', a: '2' }, rawQuery: 'b=1&a=2' }))).ok);
  assert.ok((await verify(await signed({ query: { b: '1', a: '2' }, rawQuery: 'a=2&b=1' }))).ok);
  // An unencoded '+' on the wire is a literal plus, as AWS reads it (a space must be sent as %20).
  assert.ok((await verify(await signed({ query: { q: 'a+b' }, rawQuery: 'q=a+b' }))).ok);
  await denied(await signed({ query: { q: 'a b' }, rawQuery: 'q=a+b' }), /signature does not match/);
});

test('an unsigned header added after signing is ignored, as AWS does', async () => {
  const req = await signed();
  req.headers['x-amzn-trace-id'] = 'Root=1-abc';
  req.headers['user-agent'] = 'something else';
  req.headers['openai-proxy-caching'] = '0';
  assert.ok((await verify(req)).ok);
});

test("exactly the client's SignedHeaders are used, even ones smithy skips by default", async () => {
  const req = await signed({ signableHeaders: new Set(['user-agent']) });
  assert.match(req.headers.authorization, /;user-agent;/);
  assert.ok((await verify(req)).ok);
  req.headers['user-agent'] = 'tampered';
  await denied(req, /signature does not match/);
});

test('header values are compared after whitespace folding', async () => {
  const req = await signed({ headers: { 'openai-proxy-project': '  my   project ' } });
  req.headers['openai-proxy-project'] = 'my project';
  assert.ok((await verify(req)).ok);
});

// ---- refused requests ---------------------------------------------------------------------------

test('tampering with body, signed header, path, query or method is refused', async () => {
  const body = await signed();
  body.body = enc.encode('{"model":"gpt-4o"}');
  await denied(body, /x-amz-content-sha256 header does not match/);

  const bodyNoHash = await signed({ applyChecksum: false });
  bodyNoHash.body = enc.encode('{"model":"gpt-4o"}');
  await denied(bodyNoHash, /signature does not match/);

  const header = await signed();
  header.headers['openai-proxy-project'] = 'someone-elses-project';
  await denied(header, /signature does not match/);

  const path = await signed();
  path.path = '/prod/v1/chat/completions';
  await denied(path, /signature does not match/);

  const query = await signed({ query: { limit: '10' } });
  query.query = 'limit=11';
  await denied(query, /signature does not match/);

  const method = await signed();
  method.method = 'PUT';
  await denied(method, /signature does not match/);
});

test('wrong secret, unknown key, wrong service or region are refused', async () => {
  await denied(await signed({ user: { ...alice, secretAccessKey: 'x'.repeat(40) } }), /signature does not match/);
  await denied(await signed({ user: { ...alice, accessKeyId: 'AKIANOBODY0000000000' } }), /security token .* invalid/);
  await denied(await signed({ service: 'execute-api' }), /service: 'lambda'/);
  await denied(await signed({ region: 'eu-west-1' }), /region 'us-east-1'/);
});

test('old, future, missing or mismatched dates are refused', async () => {
  await denied(await signed({ date: NOW - 16 * 60_000 }), /Signature expired/);
  await denied(await signed({ date: NOW + 16 * 60_000 }), /not yet current/);
  assert.ok((await verify(await signed({ date: NOW - 14 * 60_000 }))).ok);

  const noDate = await signed();
  delete noDate.headers['x-amz-date'];
  await denied(noDate, /Missing X-Amz-Date/);

  const otherDay = await signed();
  otherDay.headers['x-amz-date'] = '20250505T235959Z';
  await denied(otherDay, /scope date does not match/);
});

test('missing or malformed Authorization, host not signed', async () => {
  const none = await signed();
  delete none.headers.authorization;
  await denied(none, /^Missing Authentication Token$/);

  const v2 = await signed();
  v2.headers.authorization = 'AWS AKIAALICE00000000001:abc';
  await denied(v2, /Unsupported algorithm/);

  const partial = await signed();
  partial.headers.authorization = partial.headers.authorization.replace(/, Signature=.*/, '');
  await denied(partial, /requires 'Credential', 'SignedHeaders' and 'Signature'/);

  // Names that exist on every object's prototype are not headers (and must not crash the verifier).
  const proto = await signed();
  proto.headers.authorization = proto.headers.authorization.replace('SignedHeaders=', 'SignedHeaders=constructor;');
  await denied(proto, /signature does not match/);

  const hostless = await signed();
  hostless.headers.authorization = hostless.headers.authorization.replace('host;', '');
  await denied(hostless, /'Host' must be a signed header/);
});

test('messages never echo the secret or the signature', async () => {
  const req = await signed({ user: { ...alice, secretAccessKey: 'y'.repeat(40) } });
  const r = await verify(req);
  const sig = /Signature=(\w+)/.exec(req.headers.authorization)![1];
  assert.ok(!r.ok && !r.message.includes(sig) && !r.message.includes(alice.secretAccessKey));
});

// ---- presigned URLs (query-string auth) ---------------------------------------------------------

test('presigned URLs verify and expire', async () => {
  const presign = async (expiresIn: number) => {
    const signer = new SignatureV4({ credentials: alice, region: REGION, service: 'lambda', sha256: Sha256 });
    const req = await signer.presign(
      { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 8787, path: '/dev/v1/models', query: { a: 'x y' }, headers: { host: HOST } },
      { signingDate: new Date(NOW - 60_000), expiresIn },
    );
    const raw = Object.entries(req.query ?? {}).map(([k, v]) => `${escapeUri(k)}=${escapeUri(String(v))}`).join('&');
    return { method: 'GET', path: req.path, query: raw, headers: { host: HOST }, body: new Uint8Array() };
  };
  assert.ok((await verify(await presign(300))).ok);
  await denied(await presign(30), /Signature expired/);
  // A presigned URL is a credential anyone holding it can replay: 15 minutes at most.
  assert.ok((await verify(await presign(900))).ok);
  await denied(await presign(901), /X-Amz-Expires must be between 1 and 900 seconds/);
  const tampered = await presign(300);
  tampered.query = tampered.query.replace('a=x%20y', 'a=x%20z');
  await denied(tampered, /signature does not match/);
});

// ---- AWS documentation example vectors (aws-sig-v4-test-suite, AKIDEXAMPLE) ---------------------

test('golden vectors: get-vanilla, get-vanilla-query-order-key-case, post-vanilla', () => {
  const example = {
    path: '/', headers: { host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z' },
    signedHeaders: 'host;x-amz-date', payloadHash: createHash('sha256').update('').digest('hex'),
    amzDate: '20150830T123600Z', region: 'us-east-1', service: 'service',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  };
  const sig = (method: string, query: string) => computeSignature({ ...example, method, query });
  assert.is(sig('GET', ''), '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
  assert.is(sig('GET', 'Param2=value2&Param1=value1'), 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500');
  assert.is(sig('POST', ''), '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b');
});

// ---- speed --------------------------------------------------------------------------------------

test('verification is fast (median over 10k)', async () => {
  const req = await signed();
  const times: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const t0 = process.hrtime.bigint();
    await verify(req);
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  console.log(`  sigv4: median ${median.toFixed(1)} µs, p99 ${times[Math.floor(times.length * 0.99)].toFixed(1)} µs per verification (10k, ${req.body.length} B body)`);
  assert.ok(median < 1000, `median ${median} µs`);
});

// ---- credentials file ---------------------------------------------------------------------------

test('credentials: created on first start, idempotent, addUser, duplicates refused, read by the AWS SDK', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'wrapi-creds-'));
  const home = join(tmp, 'nested', 'home');
  try {
    const first = await loadOrCreateCredentials(home);
    assert.ok(first.created);
    assert.is(first.file, join(home, 'credentials'));
    assert.is((await stat(first.file)).mode & 0o777, 0o600);
    assert.is(first.users.length, 1);
    const [def] = first.users;
    assert.equal([def.name, def.admin], ['default', true]);
    assert.match(def.accessKeyId, /^AKIA[A-Z2-7]{16}$/);
    assert.is(def.secretAccessKey.length, 40);

    const second = await loadOrCreateCredentials(home);
    assert.not.ok(second.created);
    assert.equal(second.users, first.users);

    // Comments and unknown keys survive an added user.
    await writeFile(first.file, (await readFile(first.file, 'utf8')) + 'region = us-east-1 # kept\n');
    const bob = await addUser(home, 'bob.smith@example.com', false);
    const third = await loadOrCreateCredentials(home);
    assert.equal(third.users.map((u) => [u.name, u.admin]), [['default', true], ['bob.smith@example.com', false]]);
    const text = await readFile(first.file, 'utf8');
    assert.match(text, /# openai-wrapi local stack users/);
    assert.match(text, /region = us-east-1 # kept/);
    assert.is((await stat(first.file)).mode & 0o777, 0o600);

    await rejects(addUser(home, 'BOB.smith@example.com', true), /already exists/);
    await rejects(addUser(home, 'no spaces', true), /Invalid user name/);
    await rejects(addUser(home, 'x'.repeat(65), true), /Invalid user name/);
    await rejects(addUser(home, '', true), /Invalid user name/);

    for (const u of [def, bob]) {
      const creds = await fromIni({ profile: u.name, filepath: first.file, configFilepath: '/nonexistent' })();
      assert.equal([creds.accessKeyId, creds.secretAccessKey], [u.accessKeyId, u.secretAccessKey]);
    }
    // A user from the file verifies against the file.
    const v = createVerifier({ lookup: lookupByAccessKey(third.users), region: REGION, now: () => NOW });
    const r = await v(await signed({ user: bob }));
    assert.ok(r.ok && r.user.name === bob.name);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('credentials: parse/format round trip, comments, userArn', () => {
  assert.equal(parseCredentials(formatCredentials([alice, root])), [alice, root]);
  const parsed = parseCredentials('; c\n[x]\n# c\naws_access_key_id=AK ; c\naws_secret_access_key = S#not-a-comment\n[nokeys]\nfoo=bar\n');
  assert.equal(parsed, [{ name: 'x', accessKeyId: 'AK', secretAccessKey: 'S#not-a-comment', admin: false }]);
  assert.is(userArn('alice'), 'arn:aws:iam::000000000000:user/alice');
  assert.is(userArn('bob', '123456789012'), 'arn:aws:iam::123456789012:user/bob');
});

test.run();
