// `openai-wrapi doctor`: what can be checked about a stage before `pulumi up` (its stack settings,
// AWS credentials, Elastic IP and Lambda concurrency headroom) and after it (the proxy answers a
// signed request, and, when asked with --call, streams). Every check is one line: ok, warn, FAIL,
// or skip when it could not run (no settings file, no credentials, no outputs yet), with the next
// step for each problem. Nothing secret is ever printed: not the OpenAI key, not AWS keys.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { adminFunctionName, proxyFunctionName, publicFunctionName } from '../runtime/core/contract.ts';
import { DEFAULT_PROJECT, HEADER_BUDGET_LIMIT, HEADER_BUDGET_REMAINING } from '../runtime/core/protocol.ts';
import { getPrices } from './admin.ts';
import { AwsCallError, awsAccount, type AwsAccount } from './aws-account.ts';
import { count, printable, usd } from './cli-format.ts';
import { credentialsProvider, type CredentialsProvider } from './credentials.ts';
import { WrapiAccessDeniedError } from './errors.ts';
import { prepareProxyRequest, sharedSigner } from './proxy-call.ts';
import { sendSigned } from './sign.ts';
import { parseStackYaml, StackFileError, type YamlValue } from './stack-file.ts';
import { resolveTarget, type StageTarget } from './target.ts';

export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  id: string;
  status: Status;
  /** What was found, in words; never a secret. */
  message: string;
  /** The next step, as a command where there is one. */
  fix?: string;
  /** The numbers behind the message, for scripts (--json). */
  data?: Record<string, unknown>;
}

export interface DoctorReport {
  stage: string;
  /** The stack settings file read, if any. */
  stackFile: string | null;
  /** Where the stage's outputs came from, if found. */
  outputs: string | null;
  checks: Check[];
  summary: Record<Status, number>;
}

export interface DoctorOptions {
  stage: string;
  /** The folder of the Pulumi program (given: its settings file must be there). Default: the current folder. */
  dir?: string;
  /** Outputs were named explicitly (`--outputs`): not finding them is a failure. */
  outputsGiven?: boolean;
  /** Stream one chat completion billed to this project. */
  call?: string;
}

/** The cheap model and small cap of the one streamed call `--call` makes. */
export const STREAM_MODEL = 'gpt-4o-mini';
const STREAM_MAX_TOKENS = 20;
const STREAM_PROMPT = 'Count from 1 to 10, separated by spaces.';

/** Lambda refuses a reservation that leaves less than this unreserved in the account. */
const MIN_UNRESERVED = 100;
const DEFAULT_LAMBDA_QUOTA = 1000;
/** Service Quotas codes: EC2-VPC Elastic IPs, and Lambda's concurrent executions. */
const EIP_QUOTA_CODE = 'L-0263D0A3';
const LAMBDA_QUOTA_CODE = 'L-B99A9384';
const STAGE_SETTING = /^(?=.{1,20}$)[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const stackFile = await beforeDeploy(opts, add);
  const outputs = await afterDeploy(opts, add);
  const summary: Record<Status, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status]++;
  return { stage: opts.stage, stackFile, outputs, checks, summary };
}

// ------------------------------------------------------------------------------ before pulumi up

interface StackSettings {
  file: string;
  fileName: string;
  /** The settings of the program's namespace (`openai-wrapi:…`, or without a namespace). */
  get(key: string): YamlValue | undefined;
  region?: string;
  /** The stack's own stage (its `stage` setting), which names its functions and tags. */
  stage?: string;
}

async function beforeDeploy(opts: DoctorOptions, add: (c: Check) => void): Promise<string | null> {
  const { stage } = opts;
  const dir = resolve(opts.dir ?? '.');
  const fileName = `Pulumi.${stage}.yaml`;
  const file = join(dir, fileName);
  if (!existsSync(file)) {
    add(opts.dir !== undefined
      ? { id: 'stack-file', status: 'fail', message: `${fileName} is not in ${dir}`, fix: `create the stack in the folder of the Pulumi program: pulumi stack init ${stage}` }
      : { id: 'stack-file', status: 'skip', message: `before pulumi up: no ${fileName} in ${dir}, so its settings and the account were not checked`, fix: `run doctor in the folder of the Pulumi program, or pass --dir DIR` });
    return null;
  }
  let doc: YamlValue;
  try {
    doc = parseStackYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    const why = err instanceof StackFileError ? err.message : `${(err as Error).message}`;
    add({ id: 'stack-file', status: 'fail', message: `could not read ${file}: ${why}`, fix: `correct it, or look at what Pulumi reads: pulumi config --stack ${stage}` });
    return file;
  }
  const config = isMap(doc) && isMap(doc.config) ? doc.config : {};
  const namespace = projectName(dir);
  const get = (key: string): YamlValue | undefined => {
    const v = config[`${namespace}:${key}`] ?? config[key];
    return v === null ? undefined : v;
  };
  const settings: StackSettings = { file, fileName, get };
  const set = (key: string, secret = false) => `pulumi config set${secret ? ' --secret' : ''} ${key}${secret ? '' : ' VALUE'} --stack ${stage}`;

  // Region: the program deploys wherever the AWS provider is pointed; only the stack file pins it.
  const region = config['aws:region'];
  const envRegion = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (typeof region === 'string' && REGION.test(region)) {
    settings.region = region;
    add({ id: 'region', status: 'ok', message: `aws:region is ${region}` });
  } else if (region != null) {
    add({ id: 'region', status: 'fail', message: `aws:region is "${printable(String(region))}", not an AWS region`, fix: `pulumi config set aws:region eu-west-2 --stack ${stage}` });
  } else if (envRegion) {
    settings.region = envRegion;
    add({
      id: 'region', status: 'warn',
      message: `aws:region is not set in ${fileName}: pulumi up would deploy to ${printable(envRegion)}, from this shell's AWS_REGION, and another shell elsewhere`,
      fix: `pulumi config set aws:region ${printable(envRegion)} --stack ${stage}`,
    });
  } else {
    add({ id: 'region', status: 'fail', message: `aws:region is not set in ${fileName}`, fix: `pulumi config set aws:region eu-west-2 --stack ${stage} (your region)` });
  }

  const stageSetting = get('stage');
  if (stageSetting === undefined) {
    add({ id: 'stage', status: 'fail', message: `stage is not set in ${fileName} (the program requires it)`, fix: `pulumi config set stage ${stage} --stack ${stage}` });
  } else if (typeof stageSetting !== 'string' || !STAGE_SETTING.test(stageSetting)) {
    add({ id: 'stage', status: 'fail', message: `stage is "${printable(String(stageSetting))}": it must be lowercase letters, digits and single dashes, at most 20 characters`, fix: `pulumi config set stage ${stage} --stack ${stage}` });
  } else {
    settings.stage = stageSetting;
    add(stageSetting === stage
      ? { id: 'stage', status: 'ok', message: `stage is ${stage} (functions openai-proxy-${stage}, openai-admin-${stage})` }
      : {
          id: 'stage', status: 'warn',
          message: `stage is "${stageSetting}" in ${fileName}: the functions will be openai-proxy-${stageSetting} and openai-admin-${stageSetting}, which the SDK and CLI reach as stage ${stageSetting}, not ${stage}`,
          fix: `if that is not meant: pulumi config set stage ${stage} --stack ${stage}`,
        });
  }

  // Secrets: what `pulumi config set --secret` writes is `{secure: …}`; the program refuses plain text.
  for (const [key, required] of [['openaiApiKey', true], ['openaiOrgId', false], ['alertWebhookUrl', false]] as const) {
    const value = get(key);
    const id = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    // `pulumi config set --secret KEY` without a value prompts for it: the value stays out of shell history.
    const fix = `${set(key, true)} (it asks for the value)`;
    if (value === undefined) {
      if (required) add({ id, status: 'fail', message: `${key} is not set: the stage's OpenAI key (pulumi up refuses to run without it)`, fix });
    } else if (isMap(value) && typeof value.secure === 'string') {
      add({ id, status: 'ok', message: `${key} is set, as a secret` });
    } else if (typeof value === 'string' || typeof value === 'number') {
      add({
        id, status: 'fail',
        message: `${key} is in plain text in ${fileName} (pulumi up refuses it)${key === 'openaiOrgId' ? '' : ': replace it at its source too if the file was ever committed or shared'}`,
        fix,
      });
    } else {
      add({ id, status: 'fail', message: `${key} in ${fileName} is not a secret string`, fix });
    }
  }

  // AWS: the same standard chain pulumi up uses.
  let credentials: CredentialsProvider | undefined;
  const chain = credentialsProvider(process.env.AWS_PROFILE ? { profile: process.env.AWS_PROFILE } : {});
  try {
    await chain();
    credentials = chain;
    add({ id: 'aws-credentials', status: 'ok', message: `AWS credentials found (${whoseCredentials()})` });
  } catch (err) {
    add({
      id: 'aws-credentials', status: 'warn',
      message: `no AWS credentials from ${whoseCredentials()} (${printable(reason(err))}): pulumi up needs them too`,
      fix: 'aws sso login, or export AWS_PROFILE=NAME (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)',
    });
  }

  if (!credentials || !settings.region) {
    const why = !credentials ? 'no AWS credentials' : 'no region';
    add({ id: 'elastic-ips', status: 'skip', message: `Elastic IP headroom not checked: ${why}` });
    add({ id: 'lambda-concurrency', status: 'skip', message: `Lambda concurrency not checked: ${why}` });
    return file;
  }
  const account = awsAccount(credentials, settings.region);
  const [eips, lambda] = await Promise.all([elasticIpCheck(account, settings, stage), concurrencyCheck(account, settings, stage)]);
  add(eips);
  add(lambda);
  return file;
}

/** The Pulumi project's name (the settings' namespace), from Pulumi.yaml beside the stack file. */
function projectName(dir: string): string {
  try {
    const doc = parseStackYaml(readFileSync(join(dir, 'Pulumi.yaml'), 'utf8'));
    if (isMap(doc) && typeof doc.name === 'string') return doc.name;
  } catch {
    // no project file, or one this reader cannot read: the program's own name
  }
  return 'openai-wrapi';
}

function integerSetting(s: StackSettings, key: string, value: YamlValue | undefined, min: number, max: number, fallback?: number): number | string | undefined {
  if (value === undefined) return fallback;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (Number.isInteger(n) && n >= min && n <= max) return n;
  return `${key} in ${s.fileName} must be an integer from ${min} to ${max} (got ${printable(JSON.stringify(value))})`;
}

async function elasticIpCheck(account: AwsAccount, s: StackSettings, stage: string): Promise<Check> {
  const id = 'elastic-ips';
  const cache = s.get('useElastiCache');
  const useCache = cache === undefined ? true : cache === true || cache === 'true' ? true : cache === false || cache === 'false' ? false : undefined;
  if (useCache === undefined) {
    return { id, status: 'fail', message: `useElastiCache in ${s.fileName} must be true or false (got ${printable(JSON.stringify(cache))})`, fix: `pulumi config set useElastiCache true --stack ${stage}` };
  }
  if (!useCache) return { id, status: 'ok', message: 'Elastic IPs: none needed (useElastiCache is false: no VPC, no NAT gateway)', data: { needed: 0 } };
  const numAzs = integerSetting(s, 'numAzs', s.get('numAzs'), 1, 6, 3)!;
  if (typeof numAzs === 'string') return { id, status: 'fail', message: numAzs, fix: `pulumi config set numAzs 3 --stack ${stage}` };
  const region = account.region;
  let quota: number;
  let ips: Awaited<ReturnType<AwsAccount['elasticIps']>>;
  try {
    [quota, ips] = await Promise.all([account.elasticIpQuota(), account.elasticIps()]);
  } catch (err) {
    return awsProblem(id, 'Elastic IP headroom', err, 'ec2:DescribeAccountAttributes and ec2:DescribeAddresses');
  }
  // A stage that is already up holds its own NAT gateways' addresses (tagged by the program).
  const own = s.stage ? ips.filter((ip) => ip.tags.project === 'openai-wrapi' && ip.tags.stage === s.stage).length : 0;
  const inUse = ips.length;
  const free = Math.max(0, quota - inUse);
  const needed = Math.max(0, numAzs - own);
  const unassociated = ips.filter((ip) => !ip.associated).length;
  const data = { region, quota, inUse, free, needed, numAzs, alreadyTheStages: own, unassociated };
  const ownText = own ? `, ${own} of them the stage's own already` : '';
  const defaultNote = quota <= 5 ? '. At the default quota of 5, dev (numAzs 1) and prod (numAzs 3) in one region take 4 of the 5' : '';
  const message = `Elastic IPs in ${region}: ${free} free (quota ${quota}, ${inUse} in use${ownText}); the stage needs ${needed}${own ? ' more' : ''} (numAzs ${numAzs}, a NAT gateway with an Elastic IP in each AZ)${defaultNote}`;
  if (free >= needed) return { id, status: 'ok', message, data };
  const short = needed - free;
  const steps = [
    ...(unassociated ? [`release unused ones (${unassociated} not associated): aws ec2 describe-addresses --region ${region} --query "Addresses[?AssociationId==null].AllocationId" --output text, then aws ec2 release-address --allocation-id ID --region ${region}`] : []),
    `ask for more: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${EIP_QUOTA_CODE} --desired-value ${quota + short} --region ${region}`,
    numAzs - short >= 1 ? `use fewer AZs: pulumi config set numAzs ${numAzs - short} --stack ${stage}` : `go without the VPC: pulumi config set useElastiCache false --stack ${stage}`,
  ];
  return { id, status: 'fail', message, fix: steps.join('; or '), data };
}

async function concurrencyCheck(account: AwsAccount, s: StackSettings, stage: string): Promise<Check> {
  const id = 'lambda-concurrency';
  const fnStage = s.stage ?? stage;
  const publicAccess = s.get('publicAccess');
  const wanted: { setting: string; fn: string; value: YamlValue | undefined; min: number; max: number }[] = [
    { setting: 'proxyMaxConcurrency', fn: proxyFunctionName(fnStage), value: s.get('proxyMaxConcurrency'), min: 1, max: 100_000 },
    { setting: 'adminReservedConcurrency', fn: adminFunctionName(fnStage), value: s.get('adminReservedConcurrency'), min: 1, max: 1000 },
    { setting: 'publicAccess.maxConcurrency', fn: publicFunctionName(fnStage), value: isMap(publicAccess) ? publicAccess.maxConcurrency ?? undefined : undefined, min: 1, max: 100_000 },
  ];
  const reservations: { setting: string; fn: string; value: number }[] = [];
  for (const w of wanted) {
    const n = integerSetting(s, w.setting, w.value, w.min, w.max);
    if (typeof n === 'string') return { id, status: 'fail', message: n, fix: `pulumi config set${w.setting.includes('.') ? ' --path' : ''} ${w.setting} N --stack ${stage}` };
    if (n !== undefined) reservations.push({ setting: w.setting, fn: w.fn, value: n });
  }
  const region = account.region;
  const reserving = reservations.reduce((sum, r) => sum + r.value, 0);
  let limit: number;
  let unreserved: number;
  let current = 0;
  try {
    ({ limit, unreserved } = await account.lambdaConcurrency());
    // What the stage's functions reserve already comes back to the pool when their reservation changes.
    if (reserving) current = (await Promise.all(reservations.map((r) => account.reservedConcurrency(r.fn)))).reduce((a, b) => a + b, 0);
  } catch (err) {
    return awsProblem(id, 'Lambda concurrency', err, 'lambda:GetAccountSettings and lambda:GetFunctionConcurrency');
  }
  const left = unreserved + current - reserving;
  const list = reservations.map((r) => `${r.setting} ${count(r.value)}`).join(' + ');
  const data = { region, limit, unreserved, reserving, reservedNowByTheStage: current, leftUnreserved: left };
  const quotaFix = (desired: number) =>
    `aws service-quotas request-service-quota-increase --service-code lambda --quota-code ${LAMBDA_QUOTA_CODE} --desired-value ${desired} --region ${region}`;
  const low = limit < DEFAULT_LAMBDA_QUOTA
    ? `; the account's quota is ${count(limit)} (Lambda's default is 1,000; new accounts may start at 10): at most ${count(limit)} calls at once in the whole account, each streamed call holding an instance for its whole length`
    : '';
  if (reserving && left < MIN_UNRESERVED) {
    const first = reservations[0];
    return {
      id, status: 'fail',
      message: `Lambda concurrency in ${region}: the stage reserves ${count(reserving)} (${list}), which would leave ${count(left)} unreserved, and Lambda refuses a reservation that leaves less than ${MIN_UNRESERVED} (quota ${count(limit)}, ${count(unreserved)} unreserved now)${low}`,
      fix: `ask for a higher quota: ${quotaFix(Math.max(DEFAULT_LAMBDA_QUOTA, limit + MIN_UNRESERVED - left))}; or reserve less: pulumi config ${first.setting.includes('.') ? 'rm --path' : 'rm'} ${first.setting} --stack ${stage}`,
      data,
    };
  }
  const reservedText = reserving ? `the stage reserves ${count(reserving)} (${list}), leaving ${count(left)}` : 'the stage reserves none';
  if (low) {
    return { id, status: 'warn', message: `Lambda concurrency in ${region}: ${reservedText}${low}`, fix: `ask for more: ${quotaFix(DEFAULT_LAMBDA_QUOTA)}`, data };
  }
  return { id, status: 'ok', message: `Lambda concurrency in ${region}: quota ${count(limit)}, ${count(unreserved)} unreserved; ${reservedText}`, data };
}

/** An AWS call that failed: refused credentials are a failure (pulumi up would fail too), the rest leaves the check undone. */
function awsProblem(id: string, what: string, err: unknown, permissions: string): Check {
  if (!(err instanceof AwsCallError)) return { id, status: 'warn', message: `${what} not checked: ${printable(reason(err))}` };
  const said = `${err.code}: ${printable(err.message)}`;
  if (err.credentialsRefused) {
    return { id, status: 'fail', message: `${what}: AWS refused the credentials (${said})`, fix: 'see which they are: aws sts get-caller-identity; then aws sso login, or another AWS_PROFILE' };
  }
  if (err.unreachable) {
    return { id, status: 'warn', message: `${what} not checked: ${printable(err.message)}`, fix: `check the network (or AWS_ENDPOINT_URL_${err.service.toUpperCase()} if set)` };
  }
  return { id, status: 'warn', message: `${what} not checked: ${err.service} refused (${said})`, fix: `run doctor with credentials that may call ${permissions}` };
}

// ------------------------------------------------------------------------------- after pulumi up

async function afterDeploy(opts: DoctorOptions, add: (c: Check) => void): Promise<string | null> {
  const { stage } = opts;
  const asked = opts.outputsGiven === true || opts.call !== undefined;
  let target: StageTarget;
  try {
    target = resolveTarget(stage);
  } catch (err) {
    const message = printable(reason(err));
    const nothingYet = /^No proxy URL for stage/.test(message);
    add(nothingYet && !asked
      ? {
          id: 'outputs', status: 'skip',
          message: `after pulumi up: no outputs of stage ${stage} found (OPENAI_WRAPI_OUTPUTS, OPENAI_API_KEY=sk-<id>, the local stack's outputs.json), so the proxy was not called`,
          fix: `after pulumi up: pulumi stack output --json --stack ${stage} > ${stage}.json, then openai-wrapi doctor --stage ${stage} --outputs ${stage}.json`,
        }
      : { id: 'outputs', status: 'fail', message, fix: `save the stage's outputs: pulumi stack output --json --stack ${stage} > ${stage}.json, and pass --outputs ${stage}.json` });
    return null;
  }
  const local = target.credentialsFile !== undefined;
  add({ id: 'outputs', status: 'ok', message: `outputs of stage ${stage} from ${printable(target.source)}${local ? ' (the local stack)' : ''}: proxy ${printable(target.proxyUrl)}` });

  const profile = process.env.AWS_PROFILE ?? '';
  const who = local ? `local user "${printable(profile || 'default')}"` : whoseCredentials();
  try {
    await credentialsProvider({ ...(profile ? { profile } : {}), credentialsFile: target.credentialsFile })();
  } catch (err) {
    add({
      id: 'proxy', status: asked ? 'fail' : 'skip',
      message: `the proxy was not called: no credentials to sign with from ${who} (${printable(reason(err))})`,
      fix: local ? `openai-wrapi local users add NAME, then AWS_PROFILE=NAME` : 'aws sso login, or export AWS_PROFILE=NAME',
    });
    return target.source;
  }
  const signer = sharedSigner(target);
  const proxy = await modelsCheck(target, signer, who, local);
  add(proxy);
  if (opts.call === undefined) {
    add({
      id: 'stream', status: 'skip', message: 'streaming not tried: it makes one call, which costs a little',
      fix: `openai-wrapi doctor --stage ${stage} --call PROJECT (one ${STREAM_MODEL} chat completion of at most ${STREAM_MAX_TOKENS} tokens, billed to PROJECT)`,
    });
  } else if (proxy.status === 'fail') {
    add({ id: 'stream', status: 'fail', message: 'streaming not tried: the proxy did not answer GET /v1/models (above)' });
  } else {
    add(await streamCheck(target, signer, opts.call, who, local));
  }
  return target.source;
}

type Signer = ReturnType<typeof sharedSigner>;

async function signedSend(signer: Signer, url: string, init: RequestInit & { headers?: unknown; body?: unknown }, project: string, timeoutMs: number): Promise<Response> {
  await prepareProxyRequest(signer, init, url, { project, caching: false });
  return sendSigned(signer, (u, i) => fetch(u, i), url, { ...(init as RequestInit), signal: AbortSignal.timeout(timeoutMs) });
}

async function modelsCheck(target: StageTarget, signer: Signer, who: string, local: boolean): Promise<Check> {
  const id = 'proxy';
  const url = `${target.baseURL}/models`;
  let res: Response;
  try {
    res = await signedSend(signer, url, { method: 'GET' }, DEFAULT_PROJECT, 30_000);
  } catch (err) {
    return unreachable(id, target, err, local);
  }
  const body = await res.text();
  if (res.status === 200) {
    let models: unknown;
    try {
      models = (JSON.parse(body) as { data?: unknown }).data;
    } catch {
      // below
    }
    if (!Array.isArray(models)) return { id, status: 'fail', message: `GET /v1/models through the proxy answered 200 but not a model list: is ${printable(target.proxyUrl)} the stage's proxy?`, fix: `pulumi stack output proxyUrl --stack ${target.stage}` };
    return { id, status: 'ok', message: `the proxy answered a signed GET /v1/models (as ${who}): 200, ${count(models.length)} models`, data: { status: 200, models: models.length } };
  }
  return proxyRefusal(id, 'GET /v1/models', target, res.status, body, who, local);
}

function unreachable(id: string, target: StageTarget, err: unknown, local: boolean): Check {
  const e = err as { name?: string; cause?: { code?: string; message?: string }; code?: string };
  const code = e.name === 'TimeoutError' ? 'no answer in time' : e.cause?.code ?? e.code ?? printable(e.cause?.message ?? reason(err));
  return {
    id, status: 'fail', message: `could not reach the proxy at ${printable(target.proxyUrl)} (${code})`,
    fix: local ? 'start the local stack: openai-wrapi local (or npm start)' : `is the stage deployed? pulumi stack output proxyUrl --stack ${target.stage}; then save the outputs again`,
  };
}

/** A non-200 answer of the proxy (or of the function URL in front of it), said with what to do. */
function proxyRefusal(id: string, what: string, target: StageTarget, status: number, body: string, who: string, local: boolean, project?: string): Check {
  let message = '';
  let code: string | undefined;
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown; code?: unknown }; Message?: unknown; message?: unknown };
    const said = json.error?.message ?? json.Message ?? json.message;
    if (typeof said === 'string') message = said;
    if (typeof json.error?.code === 'string') code = json.error.code;
  } catch {
    message = body.slice(0, 200);
  }
  // Refusals this check explains itself are named by their code; others keep the server's words.
  const said = `${status}${code ? ` ${code}` : ''}`;
  const saidFully = `${said}${message ? `: ${printable(message.replace(/\s+/g, ' ').trim())}` : ''}`;
  const stage = target.stage;
  const p = project === undefined ? 'PROJECT' : shellWord(project);
  const data = { status, ...(code ? { code } : {}) };
  if (status === 403 && code === 'project_not_allowed') {
    return { id, status: 'fail', message: `the proxy refused the call: project "${printable(project ?? '')}" has no spending limit in stage ${stage}, so its calls are refused (${said})`, fix: `openai-wrapi limits set --stage ${stage} --project ${p} --limit 1`, data };
  }
  if (status === 403 && code === 'project_access_denied') {
    return { id, status: 'fail', message: `the proxy refused the call: ${who} is not a member of project "${printable(project ?? '')}" (${said})`, fix: `an admin: openai-wrapi projects grant --stage ${stage} --project ${p} --user NAME`, data };
  }
  if (status === 429 && code === 'budget_exceeded') {
    return { id, status: 'fail', message: `the proxy refused the call: a limit of project "${printable(project ?? '')}" is used up (${said})`, fix: `openai-wrapi limits ls --stage ${stage} --project ${p}, then raise it with limits set`, data };
  }
  if (status === 403) {
    return {
      id, status: 'fail',
      message: `${what} was refused (${saidFully}): ${local ? `the local stack does not know the keys of ${who}` : `${who} may not invoke the stage's function URL, or signed for another account or region`}`,
      fix: local
        ? 'openai-wrapi local users add NAME, then AWS_PROFILE=NAME'
        : `give the caller the stage's user policy (README: Give people access): aws iam attach-user-policy --user-name NAME --policy-arn "$(pulumi stack output userPolicyArn --stack ${stage})"`,
      data,
    };
  }
  if (code === 'stage_key_rejected' || status === 401) {
    return {
      id, status: 'fail', message: `OpenAI rejected the stage's API key (${said})`,
      fix: local ? 'set OPENAI_API_KEY to a working key and restart the local stack' : `pulumi config set --secret openaiApiKey --stack ${stage} (it asks for the key), then pulumi up --stack ${stage}`,
      data,
    };
  }
  if (status === 404) {
    return { id, status: 'fail', message: `${what} answered 404 (${saidFully}): ${printable(target.proxyUrl)} may not be the stage's proxy`, fix: `pulumi stack output proxyUrl --stack ${stage}, and save the outputs again`, data };
  }
  return { id, status: 'fail', message: `${what} answered ${saidFully}`, fix: local ? 'see the local stack\'s output' : `look at the proxy's log: aws logs tail /aws/lambda/${proxyFunctionName(stage)} --since 10m`, data };
}

async function streamCheck(target: StageTarget, signer: Signer, project: string, who: string, local: boolean): Promise<Check> {
  const id = 'stream';
  const url = `${target.baseURL}/chat/completions`;
  const body = JSON.stringify({
    model: STREAM_MODEL,
    stream: true,
    stream_options: { include_usage: true },
    max_completion_tokens: STREAM_MAX_TOKENS,
    messages: [{ role: 'user', content: STREAM_PROMPT }],
  });
  const started = Date.now();
  let res: Response;
  try {
    res = await signedSend(signer, url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }, project, 120_000);
  } catch (err) {
    return unreachable(id, target, err, local);
  }
  if (res.status !== 200) return proxyRefusal(id, 'the streamed chat completion', target, res.status, await res.text(), who, local, project);
  const type = res.headers.get('content-type') ?? '';
  const remaining = Number(res.headers.get(HEADER_BUDGET_REMAINING));
  const limit = Number(res.headers.get(HEADER_BUDGET_LIMIT));

  // Count the pieces the body arrives in: a stream comes as many, a buffered answer as one.
  let chunks = 0;
  let firstMs = 0;
  let lastMs = 0;
  let text = '';
  try {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      if (!r.value?.byteLength) continue;
      chunks++;
      lastMs = Date.now() - started;
      if (chunks === 1) firstMs = lastMs;
      text += decoder.decode(r.value, { stream: true });
    }
  } catch (err) {
    return { id, status: 'fail', message: `the stream broke off after ${chunks} chunks (${printable(reason(err))})`, fix: `try again; if it keeps breaking, look at the proxy's log: aws logs tail /aws/lambda/${proxyFunctionName(target.stage)} --since 10m` };
  }
  let usage: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
  let model = STREAM_MODEL;
  let events = 0;
  let done = false;
  let streamError: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    try {
      const event = JSON.parse(data) as { model?: string; usage?: typeof usage; error?: { message?: string } };
      events++;
      if (event.error) streamError = String(event.error.message ?? 'error');
      if (typeof event.model === 'string') model = event.model;
      if (event.usage) usage = event.usage;
    } catch {
      // not JSON: not an event this check reads
    }
  }
  const data: Record<string, unknown> = { project, model, chunks, events, firstChunkMs: firstMs, lastChunkMs: lastMs, usage: usage ?? null };
  if (streamError) return { id, status: 'fail', message: `the stream ended in an error: ${printable(streamError)}`, data };
  if (!type.includes('text/event-stream')) {
    return { id, status: 'fail', message: `the answer is ${printable(type || 'without a content type')}, not text/event-stream`, fix: `is ${printable(target.proxyUrl)} the stage's proxy? pulumi stack output proxyUrl --stack ${target.stage}`, data };
  }
  if (chunks <= 1) {
    return {
      id, status: 'fail',
      message: `the answer arrived in one piece (${events} events in ${chunks} chunk after ${lastMs} ms): the function URL buffers instead of streaming (README: Known risk: streaming from a function in a VPC)`,
      fix: `pulumi config set useElastiCache false --stack ${target.stage}, then pulumi up --stack ${target.stage}`,
      data,
    };
  }
  if (!usage || !done) {
    return { id, status: 'fail', message: `the stream ended without ${usage ? '[DONE]' : 'its usage'} (${events} events in ${chunks} chunks): the proxy could not bill it exactly`, fix: `look at the proxy's log: aws logs tail /aws/lambda/${proxyFunctionName(target.stage)} --since 10m`, data };
  }
  const input = usage.prompt_tokens ?? 0;
  const output = usage.completion_tokens ?? 0;
  const cost = await costOf(target.stage, model, input, usage.prompt_tokens_details?.cached_tokens ?? 0, output);
  if (cost.usd !== undefined) data.costUsd = cost.usd;
  const budget = res.headers.has(HEADER_BUDGET_LIMIT) && Number.isFinite(remaining) && Number.isFinite(limit)
    ? `; before it, ${usd(remaining)} of the ${usd(limit)} limit was left` : '';
  return {
    id, status: 'ok',
    message: `streamed a ${printable(model)} chat completion billed to project "${printable(project)}" in ${chunks} chunks (the first after ${firstMs} ms, ` +
      `the last after ${lastMs} ms); usage ${count(input)} tokens in, ${count(output)} out; ${cost.text}${budget}`,
    data,
  };
}

/** The call's cost at the stage's price for the model (read through the admin function). */
async function costOf(stage: string, model: string, input: number, cached: number, output: number): Promise<{ usd?: number; text: string }> {
  try {
    const [price] = (await getPrices({ staging: stage, model })).prices;
    const usdCost = ((input - cached) * price.input + cached * (price.cachedInput ?? price.input) + output * price.output) / 1e6;
    const rounded = Math.round(usdCost * 1e9) / 1e9;
    return { usd: rounded, text: `cost ${usd(rounded)}` };
  } catch (err) {
    const why = err instanceof WrapiAccessDeniedError ? 'reading the stage\'s prices needs the admin policy' : printable(reason(err)).split('. ')[0];
    return { text: `cost not shown (${why})` };
  }
}

// ------------------------------------------------------------------------------------- printing

const LABEL: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

/** One line per check (`STATUS  message → next step`), then the summary. */
export function formatReport(r: DoctorReport): string {
  const where = `settings ${r.stackFile ? printable(r.stackFile) : 'not found'}; outputs ${r.outputs ? printable(r.outputs) : 'not found'}`;
  const lines = r.checks.map((c) => printable(`${LABEL[c.status]}  ${c.message}${c.fix && c.status !== 'ok' ? ` → ${c.fix}` : ''}`));
  const s = r.summary;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const verdict = s.fail ? ': fix the FAIL lines first.' : s.warn ? ': no failures; read the warnings.' : ': nothing to fix.';
  return [
    `Checking stage ${r.stage} (${where}):`,
    ...lines,
    `${s.ok} ok, ${plural(s.warn, 'warning')}, ${s.fail} failed, ${s.skip} skipped${verdict}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------- small

function whoseCredentials(): string {
  const profile = process.env.AWS_PROFILE;
  if (profile) return `AWS profile "${printable(profile)}"`;
  if (process.env.AWS_ACCESS_KEY_ID) return 'AWS_ACCESS_KEY_ID';
  return 'the standard AWS credential chain';
}

function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // The credential chain's own explanation is long; its cause says what went wrong.
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error && /^No AWS credentials from/.test(message) ? cause.message : message;
  return inner.replace(/\s+/g, ' ').trim();
}

const isMap = (v: unknown): v is { [key: string]: YamlValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value as one shell word: quoted when it needs to be. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
