// Module-level settings (setProject, setStaging, setCaching and their environment variables) and
// the three ways to find a stage's proxy URL, with the errors that say what to set.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, {
  WrapiConfigError, budgetOf, removeLimit, setLimits, setPrice, getSettings, proxyBaseURL, resetSettings, resolveTarget, setCaching, setProject, setStaging,
} from '../sdk/index.ts';
import { settled } from './helpers/stack.ts';
import { chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;
let dir: string;

test.before(async () => {
  t = await startSdkStack();
  dir = await mkdtemp(join(tmpdir(), 'wrapi-outputs-'));
  for (const stage of ['dev', 'prod']) {
    for (const project of ['N/A', 'alpha', 'beta']) await t.admin({ action: 'setLimit', project, limit: 5 }, stage);
  }
});
test.after(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});
test.before.each(() => {
  resetSettings();
  for (const k of ['OPENAI_DEFAULT_PROJECT', 'OPENAI_DEFAULT_STAGING', 'OPENAI_DEFAULT_CACHING', 'OPENAI_API_KEY', 'OPENAI_API_KEY_PROD', 'AWS_REGION', 'OPENAI_WRAPI_HOME']) {
    delete process.env[k];
  }
  process.env.OPENAI_WRAPI_OUTPUTS = t.stack.outputsFile;
});

const projectsOf = async (stage: string) =>
  new Set(((await t.admin({ action: 'usage', by: 'project' }, stage)).rows as any[]).map((r) => r.project));

test('defaults: project N/A, stage dev, caching on', () => {
  assert.equal(getSettings(), { project: 'N/A', staging: 'dev', caching: true });
  const client = new OpenAI();
  assert.equal([client.project, client.staging, client.caching], ['N/A', 'dev', true]);
});

test('setProject, setStaging, setCaching apply to clients created afterwards, not to earlier ones', async () => {
  const before = new OpenAI();
  setProject('alpha');
  setStaging('prod');
  setCaching(false);
  const after = new OpenAI();
  assert.equal([after.project, after.staging, after.caching], ['alpha', 'prod', false]);
  assert.equal([before.project, before.staging, before.caching], ['N/A', 'dev', true]);
  const { response } = await after.chat.completions.create(chat('module settings')).withResponse();
  assert.is(budgetOf(response)!.cache, 'bypass');
  assert.is(budgetOf(response)!.scope!.project, 'alpha');
  await settled(t, async () => (await projectsOf('prod')).has('alpha'));
  assert.not.ok((await projectsOf('dev')).has('alpha'), 'billed to the prod stage only');
  const explicit = new OpenAI({ project: 'beta', staging: 'dev', caching: true });
  assert.equal([explicit.project, explicit.staging, explicit.caching], ['beta', 'dev', true]);
});

test('the original environment names set the defaults', async () => {
  process.env.OPENAI_DEFAULT_PROJECT = 'beta';
  process.env.OPENAI_DEFAULT_STAGING = 'prod';
  process.env.OPENAI_DEFAULT_CACHING = '0';
  const client = new OpenAI();
  assert.equal([client.project, client.staging, client.caching], ['beta', 'prod', false]);
  await client.chat.completions.create(chat('env settings'));
  await settled(t, async () => (await projectsOf('prod')).has('beta'));
  setProject('alpha');
  assert.is(new OpenAI().project, 'alpha', 'setProject beats the environment');
  process.env.OPENAI_DEFAULT_CACHING = 'maybe';
  assert.throws(() => getSettings(), /OPENAI_DEFAULT_CACHING must be 1 or 0/);
});

test('bad settings are refused at once', () => {
  assert.throws(() => setProject('a#b'), (e: Error) => e instanceof WrapiConfigError);
  assert.throws(() => setProject(''), /1-128 Latin-1 characters/);
  assert.throws(() => setProject('caf\u00e9 \u0085'), /without "#", control characters or soft hyphens/);
  assert.throws(() => setStaging('no stage'), /stage name/);
  assert.throws(() => setCaching('yes' as unknown as boolean), /true or false/);
  assert.throws(() => new OpenAI({ staging: '../etc' }), /stage name/);
});

// ------------------------------------------------------------------ where the proxy is

test('way 1: an explicit proxyUrl (or baseURL) wins over everything', async () => {
  process.env.OPENAI_WRAPI_OUTPUTS = join(dir, 'missing.json');
  const client = new OpenAI({ proxyUrl: `${t.stack.url}/dev/`, project: 'alpha', caching: false });
  assert.is(client.baseURL, `${t.stack.url}/dev/v1`);
  assert.is(client.target.source, 'the proxyUrl option');
  assert.ok((await client.chat.completions.create(chat('explicit url'))).id);
  assert.is(new OpenAI({ baseURL: `${t.stack.url}/dev/v1` }).baseURL, `${t.stack.url}/dev/v1`);
  assert.throws(() => new OpenAI({ proxyUrl: 'not a url' }), /not a URL/);
  assert.throws(() => new OpenAI({ proxyUrl: 'https://proxy.example.com/' }), /region of https:\/\/proxy\.example\.com\/ is unknown/);
  assert.is(new OpenAI({ proxyUrl: 'https://abc.lambda-url.eu-west-2.on.aws' }).target.region, 'eu-west-2');
});

test("OpenAI's own URL as baseURL means the default proxy; as proxyUrl it is refused: nothing is signed for OpenAI", async () => {
  process.env.AWS_REGION = 'eu-west-1';
  const client = new OpenAI({ baseURL: 'https://api.openai.com/v1', project: 'alpha', caching: false });
  assert.is(client.baseURL, `${t.stack.url}/dev/v1`, 'the stage\'s proxy, from the outputs');
  assert.ok((await client.chat.completions.create(chat('default proxy'))).id);
  assert.is(client.withOptions({ timeout: 5_000 }).baseURL, `${t.stack.url}/dev/v1`);
  assert.throws(() => new OpenAI({ proxyUrl: 'https://api.openai.com/v1' }), /is OpenAI's own API \(https:\/\/api\.openai\.com\), not a proxy/);
});

test('way 2a: OPENAI_WRAPI_OUTPUTS is the local stack\'s outputs.json (both stages, with its Lambda endpoint)', () => {
  const dev = resolveTarget('dev');
  assert.is(dev.proxyUrl, `${t.stack.url}/dev/`);
  assert.is(dev.lambdaEndpoint, t.stack.url);
  assert.is(dev.adminFunctionName, 'openai-admin-dev');
  assert.is(resolveTarget('prod').baseURL, `${t.stack.url}/prod/v1`);
  assert.throws(() => resolveTarget('qa'), /has no outputs for stage "qa"\. It has stages dev, prod\./);
});

test('way 2b: a folder of <stage>.json files saved from `pulumi stack output --json`', async () => {
  const folder = join(dir, 'stacks');
  await mkdir(folder, { recursive: true });
  const local = JSON.parse(await readFile(t.stack.outputsFile, 'utf8'));
  for (const stage of ['dev', 'prod']) {
    // What `pulumi stack output --json` prints for one stack: no stage key, no local endpoint.
    const { lambdaEndpoint: _e, local: _l, ...outputs } = local[stage];
    await writeFile(join(folder, `${stage}.json`), JSON.stringify({ ...outputs, userPolicyArn: 'arn:aws:iam::1:policy/u' }));
  }
  process.env.OPENAI_WRAPI_OUTPUTS = folder;
  const prod = resolveTarget('prod');
  assert.is(prod.proxyUrl, `${t.stack.url}/prod/`);
  assert.is(prod.source, join(folder, 'prod.json'));
  assert.is(prod.lambdaEndpoint, undefined);
  const client = new OpenAI({ staging: 'prod', project: 'alpha', caching: false });
  assert.ok((await client.chat.completions.create(chat('from a pulumi outputs folder'))).id);
  assert.throws(() => resolveTarget('qa'), /has no qa\.json\. It has stages dev, prod\. Save the stage's outputs there: pulumi stack output --json --stack qa/);
  assert.throws(() => resolveTarget('Prod'), /has no Prod\.json\. It has stages dev, prod\. Did you mean "prod"\?/);

  // One stack's file names its stage through the admin function: using it for another stage is an error.
  process.env.OPENAI_WRAPI_OUTPUTS = join(folder, 'dev.json');
  assert.is(resolveTarget('dev').proxyUrl, `${t.stack.url}/dev/`);
  assert.throws(() => resolveTarget('prod'), /holds the outputs of stage "dev", not "prod"/);
  await writeFile(join(dir, 'broken.json'), '{ not json');
  process.env.OPENAI_WRAPI_OUTPUTS = join(dir, 'broken.json');
  assert.throws(() => resolveTarget('dev'), /is not valid JSON/);
  process.env.OPENAI_WRAPI_OUTPUTS = join(dir, 'nowhere.json');
  assert.throws(() => resolveTarget('dev'), /OPENAI_WRAPI_OUTPUTS points at .*nowhere\.json, which does not exist/);
});

test('way 3: OPENAI_API_KEY=sk-<id> means https://<id>.lambda-url.<region>.on.aws/', async () => {
  delete process.env.OPENAI_WRAPI_OUTPUTS;
  process.env.OPENAI_WRAPI_HOME = join(dir, 'no-local-stack');
  const id = 'abcdefghij0123456789klmnopqrstuv';
  process.env.OPENAI_API_KEY = `sk-${id}`;
  assert.throws(() => resolveTarget('dev'), /region is unknown: set AWS_REGION/);
  process.env.AWS_REGION = 'eu-west-2';
  const dev = resolveTarget('dev');
  assert.is(dev.proxyUrl, `https://${id}.lambda-url.eu-west-2.on.aws/`);
  assert.is(dev.region, 'eu-west-2');
  assert.is(dev.adminFunctionName, 'openai-admin-dev');
  assert.is(dev.source, 'OPENAI_API_KEY');
  process.env.OPENAI_API_KEY_PROD = 'sk-prodprodprodprodprodprodprodprod';
  assert.is(proxyBaseURL('prod'), 'https://prodprodprodprodprodprodprodprod.lambda-url.eu-west-2.on.aws/v1');

  // The client sends there, signed for that region (no network: a fetch that answers itself).
  const seen: { url: string; auth: string | null }[] = [];
  const client = new OpenAI({
    project: 'alpha',
    maxRetries: 0,
    fetch: async (url, init) => {
      seen.push({ url: String(url), auth: new Headers(init?.headers).get('authorization') });
      return Response.json({ object: 'list', data: [] });
    },
  });
  await client.models.list();
  assert.is(seen[0].url, `https://${id}.lambda-url.eu-west-2.on.aws/v1/models`);
  assert.match(seen[0].auth!, /\/eu-west-2\/lambda\/aws4_request/);

  // A real OpenAI key is not a function URL id.
  process.env.OPENAI_API_KEY = 'sk-proj-Abc123DEF456ghi789JKL012mno345PQR678stu901VWX';
  assert.throws(() => resolveTarget('dev'), /No proxy URL for stage "dev"/);
});

test('last resort: the local stack in OPENAI_WRAPI_HOME; nothing at all is an error saying what to set', () => {
  delete process.env.OPENAI_WRAPI_OUTPUTS;
  process.env.OPENAI_WRAPI_HOME = t.home;
  assert.is(resolveTarget('dev').source, join(t.home, 'outputs.json'));
  process.env.OPENAI_WRAPI_HOME = join(dir, 'empty');
  const err = (() => {
    try {
      new OpenAI();
    } catch (e) {
      return e as Error;
    }
  })()!;
  assert.instance(err, WrapiConfigError);
  for (const hint of ['proxyUrl option', 'OPENAI_WRAPI_OUTPUTS', 'pulumi stack output --json', 'OPENAI_API_KEY=sk-<id>', 'AWS_REGION', 'openai-wrapi local']) {
    assert.ok(err.message.includes(hint), `mentions ${hint}`);
  }
});

test('a project name with a space at either end is refused: HTTP would trim it and bill another project', () => {
  assert.throws(() => new OpenAI({ project: 'demo ' }), (e: unknown) => e instanceof WrapiConfigError);
  assert.throws(() => setProject(' demo'), (e: unknown) => e instanceof WrapiConfigError);
});

test('amounts are numbers: a string or NaN is refused before anything is sent, saying what it got', async () => {
  for (const [call, got] of [
    [() => setLimits({ project: 'demo', limit: '10' as unknown as number }), /\(got the string "10"\)/],
    [() => setLimits({ project: 'demo', limit: NaN }), /\(got NaN\)/],
    [() => setLimits({ project: 'demo', limit: 0.0000000004 }), /\(got 4e-10\)/],
    [() => setPrice({ model: 'm', input: 1, output: Infinity }), /^output must be a number of USD.*\(got Infinity\)/],
    [() => setPrice({ model: 'm', input: 1, output: 1, audio: { output: '2' as unknown as number } }), /^audio\.output .*\(got the string "2"\)/],
  ] as const) {
    const err = await call().catch((e) => e);
    assert.instance(err, WrapiConfigError);
    assert.match(err.message, /must be a number of USD, 0 or from 0\.000001 to 1000000/);
    assert.match(err.message, got);
  }
});

test('alerts go with a USD limit and are percents: refused before anything is sent otherwise', async () => {
  for (const [call, message] of [
    [() => setLimits({ project: 'demo', rpm: 5, alerts: [80] }), /^alerts go with limit/],
    [() => setLimits({ project: 'demo', limit: 1, alerts: 80 as unknown as number[] }), /^alerts must be an array of whole percents, a string .*\(got number\)/],
    [() => setLimits({ project: 'demo', limit: 1, alerts: ['80'] as unknown as number[] }), /^alerts must be an array of whole percents/],
  ] as const) {
    const err = await call().catch((e) => e);
    assert.instance(err, WrapiConfigError);
    assert.match(err.message, message);
  }
});

test('an empty or blank user or model is refused before anything is sent, never read as the whole project', async () => {
  for (const call of [
    () => setLimits({ project: 'demo', user: '', limit: 1 }),
    () => setLimits({ project: 'demo', model: '  ', limit: 1 }),
    () => removeLimit({ project: 'demo', model: '' }),
  ]) {
    const err = await call().catch((e) => e);
    assert.instance(err, WrapiConfigError);
    assert.match(err.message, /must be a non-empty name, or left out for the whole project/);
  }
});

test.run();
