// A machine whose clock is off (issue 12, defect 5): the local stack refuses a signature more than 15
// minutes from its own time, as a function URL does at 5. The SDK corrects from the answer's `Date`
// (real SigV4, real local stack; only the SDK's reading of the local clock is moved).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI, { PermissionDeniedError, createFetch, signedFetch } from '../sdk/index.ts';
import { OpenAI as PlainOpenAI } from 'openai';
import { localClock } from '../sdk/clock.ts';
import { parseCredentials } from '../runtime/local/credentials.ts';
import { readFile } from 'node:fs/promises';
import { chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;
const HOUR = 3_600_000;

test.before(async () => {
  t = await startSdkStack();
  await t.admin({ action: 'setLimit', project: 'skew', limit: 5 });
});
test.after.each(() => {
  localClock.now = () => Date.now();
});
test.after(() => t.close());

/** A fetch that records the signing time of what it sends, then sends it. */
function recording() {
  const signedAt: number[] = [];
  const send = (url: string | URL | Request, init?: RequestInit) => {
    const d = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(new Headers(init?.headers).get('x-amz-date') ?? '')!;
    signedAt.push(Date.UTC(+d[1], +d[2] - 1, +d[3], +d[4], +d[5], +d[6]));
    return fetch(url, init);
  };
  return { signedAt, fetch: send };
}

const near = (ms: number) => Math.abs(ms - Date.now()) < 60_000;

test('a right clock is never corrected: one attempt per call', async () => {
  const sent = recording();
  const client = new OpenAI({ project: 'skew', caching: false, maxRetries: 0, fetch: sent.fetch });
  await client.chat.completions.create(chat('on time fake:words=1'));
  assert.is(sent.signedAt.length, 1);
  assert.ok(near(sent.signedAt[0]));
});

test('a clock an hour behind: the drop-in client re-signs once with the time from Date, and later calls sign right at once', async () => {
  localClock.now = () => Date.now() - HOUR;
  const sent = recording();
  const client = new OpenAI({ project: 'skew', caching: false, maxRetries: 0, fetch: sent.fetch });
  const answer = await client.chat.completions.create(chat('behind fake:words=2'));
  assert.is(answer.choices[0].message.content, 'This answer.');
  assert.is(sent.signedAt.length, 2, 'refused once, then corrected');
  assert.ok(Date.now() - sent.signedAt[0] > 59 * 60_000, 'first signed with the wrong clock');
  assert.ok(near(sent.signedAt[1]), 'then with the proxy\'s time');

  // The offset is kept for the host: the next call, and a stream, need no second attempt.
  await client.chat.completions.create(chat('behind again fake:words=1'));
  let text = '';
  for await (const chunk of await client.chat.completions.create({ ...chat('behind stream fake:words=3'), stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.is(text, 'This answer comes.');
  assert.is(sent.signedAt.length, 4);
  assert.ok(near(sent.signedAt[3]));
});

test('a clock two hours ahead: createFetch and signedFetch correct it too', async () => {
  localClock.now = () => Date.now() + 2 * HOUR;
  const viaCreate = recording();
  const res = await createFetch({ project: 'skew', caching: false, fetch: viaCreate.fetch })(`${t.stack.url}/dev/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(chat('ahead fake:words=2')),
  });
  assert.is(res.status, 200, await res.clone().text());
  assert.is(viaCreate.signedAt.length, 2);
  assert.ok(near(viaCreate.signedAt[1]));

  localClock.now = () => Date.now() - 3 * HOUR;
  const me = parseCredentials(await readFile(`${t.home}/credentials`, 'utf8')).find((u) => u.name === 'default')!;
  const viaSigned = recording();
  const f = signedFetch({ credentials: { accessKeyId: me.accessKeyId, secretAccessKey: me.secretAccessKey }, region: 'us-east-1', fetch: viaSigned.fetch });
  const again = await f(`${t.stack.url}/dev/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'openai-proxy-project': 'skew', 'openai-proxy-caching': '0' },
    body: JSON.stringify(chat('far behind fake:words=2')),
  });
  assert.is(again.status, 200, await again.clone().text());
  assert.is(viaSigned.signedAt.length, 2);
  assert.ok(near(viaSigned.signedAt[1]));
});

test('a client a library builds (the register patch) signs with the offset learned for the host', async () => {
  localClock.now = () => Date.now() - 5 * HOUR;
  await new OpenAI({ project: 'skew', caching: false, maxRetries: 0 }).chat.completions.create(chat('learn fake:words=1'));
  const sent = recording();
  const library = new PlainOpenAI({ apiKey: 'unused', maxRetries: 0, fetch: sent.fetch, defaultHeaders: { 'openai-proxy-project': 'skew' } });
  const answer = await library.chat.completions.create(chat('library fake:words=2'));
  assert.is(answer.choices[0].message.content, 'This answer.');
  assert.is(sent.signedAt.length, 1);
  assert.ok(near(sent.signedAt[0]));
});

test('a client a library builds re-signs once after its own refusal for a wrong clock', async () => {
  localClock.now = () => Date.now() + 3 * HOUR; // off by a new amount: the offset learned above is wrong now
  const sent = recording();
  const library = new PlainOpenAI({ apiKey: 'unused', maxRetries: 0, fetch: sent.fetch, defaultHeaders: { 'openai-proxy-project': 'skew' } });
  const answer = await library.chat.completions.create(chat('library ahead fake:words=2'));
  assert.is(answer.choices[0].message.content, 'This answer.');
  assert.is(sent.signedAt.length, 2, 'refused once, then corrected');
  assert.ok(near(sent.signedAt[1]));
});

test('a clock that cannot be corrected: one retry, then an error that says how far off it is', async () => {
  // A clock losing an hour at every reading: whatever offset is learned is wrong by the next one.
  let readings = 0;
  localClock.now = () => Date.now() - ++readings * HOUR;
  const sent = recording();
  const client = new OpenAI({ project: 'skew', caching: false, maxRetries: 2, fetch: sent.fetch });
  const err = await client.chat.completions.create(chat('drifting fake:words=2')).catch((e) => e);
  assert.instance(err, PermissionDeniedError);
  assert.is(err.code, 'clock_skew');
  assert.match(err.message, /Signature (expired|not yet current).*your clock is \d+ minutes off \(behind the proxy's, which reads \d{4}-/);
  assert.match(err.message, /Set the system clock right/);
  assert.is(sent.signedAt.length, 2, 'retried once, and the client does not retry the final refusal');
});

test('a clock set right again: the stale offset is replaced at the next refusal', async () => {
  const sent = recording();
  const client = new OpenAI({ project: 'skew', caching: false, maxRetries: 0, fetch: sent.fetch });
  await client.chat.completions.create(chat('healed fake:words=1'));
  await client.chat.completions.create(chat('healed again fake:words=1'));
  assert.is(sent.signedAt.length, 3, 'the offset learned from the drifting clock costs one refusal, once');
  assert.ok(sent.signedAt.slice(1).every(near));
});

test.run();
