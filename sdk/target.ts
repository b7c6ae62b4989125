// Where a stage's proxy and admin function are: an explicit option; else stack outputs (the local
// stack's outputs.json, or `pulumi stack output --json` saved to a file) found through
// OPENAI_WRAPI_OUTPUTS; else the original's convention OPENAI_API_KEY=sk-<id>, meaning
// https://<id>.lambda-url.<region>.on.aws/; else the local stack's outputs in its home folder.
// Synchronous on purpose: the `openai` client builds URLs synchronously.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { adminFunctionName } from '../runtime/core/contract.ts';
import { WrapiConfigError } from './errors.ts';
import { checkStaging, readEnv } from './settings.ts';

type Env = Record<string, string | undefined>;

/** The `openai` package's default base URL: what the register patch and the fetch reroute. */
export const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/**
 * OpenAI's own API hosts: api.openai.com and its regional ones (us.api.openai.com, ...), in any case,
 * with or without the trailing root dot. Never a proxy to sign for.
 */
const isOpenAIHost = (hostname: string): boolean => /(^|\.)api\.openai\.com\.?$/i.test(hostname);

/** A URL on one of OpenAI's API hosts (any port: never a proxy either). */
export const isOpenAIUrl = (url: string | null | undefined): boolean => {
  try {
    return url != null && isOpenAIHost(new URL(url).hostname);
  } catch {
    return false;
  }
};

/**
 * A URL that reaches OpenAI's API: an OpenAI host on the scheme's default port (the URL parser has
 * already dropped `:443`/`:80` and lowercased the host). The register patch decides by this, not by
 * comparing strings, so `https://API.OPENAI.COM/v1` or `https://eu.api.openai.com/v1` cannot slip by.
 */
export const reachesOpenAI = (url: string | null | undefined): boolean => {
  try {
    const u = new URL(url ?? '');
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.port === '' && isOpenAIHost(u.hostname);
  } catch {
    return false;
  }
};

/** Everything the SDK needs to call one stage. */
export interface StageTarget {
  stage: string;
  /** The function URL (or local stack path) of the stage's proxy, ending in `/`. */
  proxyUrl: string;
  /** `proxyUrl` + `v1`: what an OpenAI-compatible client takes as its base URL. */
  baseURL: string;
  /** The AWS region requests are signed for. */
  region: string;
  /** The stage's admin function (`openai-admin-<stage>`). */
  adminFunctionName: string;
  /** The Lambda API endpoint to invoke it at, when not AWS's own (the local stack). */
  lambdaEndpoint?: string;
  /** The local stack's credentials file: its users are the only keys it accepts. */
  credentialsFile?: string;
  /** Where this came from, for messages and `openai-wrapi outputs`. */
  source: string;
}

export interface TargetOptions {
  /** The stage's proxy URL, e.g. `https://abc.lambda-url.eu-west-2.on.aws/`. Wins over everything. */
  proxyUrl?: string;
  /** AWS region to sign for. Default: from the outputs or the URL, else `AWS_REGION`. */
  region?: string;
  /** Lambda API endpoint for the admin function (the local stack's URL). */
  lambdaEndpoint?: string;
  env?: Env;
}

/** The key shape of the original's convention: `sk-` + the function URL id (lower case). */
const URL_ID_KEY = /^sk-([a-z0-9]{16,64})$/;
const LAMBDA_URL_HOST = /^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$/;

/** Resolves a stage's target or throws a {@link WrapiConfigError} that says what to set. */
export function resolveTarget(stage: string, opts: TargetOptions = {}): StageTarget {
  checkStaging(stage);
  const env = opts.env ?? process.env;
  if (opts.proxyUrl) return fromUrl(stage, opts.proxyUrl, 'the proxyUrl option', opts, env);

  const outputs = readEnv(env, 'OPENAI_WRAPI_OUTPUTS');
  if (outputs) return fromOutputs(stage, resolve(outputs), 'OPENAI_WRAPI_OUTPUTS', opts, env, true)!;

  for (const name of [`OPENAI_API_KEY_${stage.toUpperCase().replace(/-/g, '_')}`, 'OPENAI_API_KEY']) {
    const id = URL_ID_KEY.exec(readEnv(env, name) ?? '')?.[1];
    if (!id) continue;
    const region = opts.region ?? readEnv(env, 'AWS_REGION') ?? readEnv(env, 'AWS_DEFAULT_REGION');
    if (!region) {
      throw new WrapiConfigError(
        `${name}=sk-${id} names the function URL https://${id}.lambda-url.<region>.on.aws/, but the region is unknown: set AWS_REGION.`,
      );
    }
    return fromUrl(stage, `https://${id}.lambda-url.${region}.on.aws/`, name, { ...opts, region }, env);
  }

  const home = readEnv(env, 'OPENAI_WRAPI_HOME') ?? '.openai-wrapi';
  const localFile = join(resolve(home), 'outputs.json');
  const local = fromOutputs(stage, localFile, 'the local stack', opts, env, false);
  if (local) return local;

  const localStages = stagesIn(readJsonQuietly(localFile));
  throw new WrapiConfigError(
    `No proxy URL for stage "${stage}". Set one of: the proxyUrl option; OPENAI_WRAPI_OUTPUTS (a file saved from ` +
      '`pulumi stack output --json`, a folder of <stage>.json such files, or the local stack\'s outputs.json); ' +
      'OPENAI_API_KEY=sk-<id> for https://<id>.lambda-url.<region>.on.aws/ (with AWS_REGION). ' +
      (localStages.length
        ? `The local stack in ${resolve(home)} has stages ${stagesNote(stage, localStages)}`
        : `Or start the local stack (openai-wrapi local) and set OPENAI_WRAPI_HOME to its folder (looked in ${resolve(home)}).`),
  );
}

/**
 * The proxy a client's own base URL names: the current stage's (as resolved), or any Lambda
 * function URL (region from its host). Anything else (OpenAI, Azure, a model server) is not one.
 */
export function proxyTargetOf(baseURL: string, stage: string): StageTarget | undefined {
  const base = baseURL.replace(/\/+$/, '');
  try {
    const current = resolveTarget(stage);
    if (base === current.baseURL.replace(/\/+$/, '') || `${base}/` === current.proxyUrl) return current;
  } catch {
    // no proxy configured for the stage: only a function URL can still be one
  }
  try {
    if (LAMBDA_URL_HOST.test(new URL(baseURL).hostname)) return fromUrl(stage, baseURL, 'the client\'s baseURL', {}, process.env);
  } catch {
    return undefined;
  }
  return undefined;
}

/** `dev, prod. Did you mean "prod"?` — stage names are case-sensitive, as the stacks' are. */
function stagesNote(stage: string, stages: string[]): string {
  const close = stages.find((s) => s.toLowerCase() === stage.toLowerCase());
  return `${stages.join(', ')}.${close ? ` Did you mean "${close}"?` : ''}`;
}

const stagesIn = (outputs: Outputs | undefined): string[] =>
  outputs ? Object.keys(outputs).filter((k) => isObject(outputs[k]) && typeof (outputs[k] as Outputs).proxyUrl === 'string') : [];

function readJsonQuietly(file: string): Outputs | undefined {
  try {
    return readJson(file, file, false);
  } catch {
    return undefined;
  }
}

function fromUrl(stage: string, url: string, source: string, opts: TargetOptions, env: Env): StageTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WrapiConfigError(`${source} is not a URL: ${JSON.stringify(url)}.`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new WrapiConfigError(`${source} must be an http(s) URL (got ${url}).`);
  }
  // Signing for OpenAI itself would send the AWS key id (and session token) to OpenAI, unmetered.
  if (isOpenAIUrl(url)) {
    throw new WrapiConfigError(`${source} is OpenAI's own API (${parsed.origin}), not a proxy: give the stage's proxy URL, or leave it out.`);
  }
  parsed.search = '';
  parsed.hash = '';
  // Accept the function URL itself or an OpenAI-style base URL that already ends in /v1.
  const root = parsed.href.replace(/\/v1\/?$/, '/').replace(/\/?$/, '/');
  const loopback = /^(127\.|localhost$|\[::1\]$)/.test(parsed.hostname);
  const region =
    opts.region ??
    LAMBDA_URL_HOST.exec(parsed.hostname)?.[1] ??
    readEnv(env, 'AWS_REGION') ??
    readEnv(env, 'AWS_DEFAULT_REGION') ??
    (loopback ? 'us-east-1' : undefined);
  if (!region) throw new WrapiConfigError(`The AWS region of ${root} is unknown: pass the region option or set AWS_REGION.`);
  return {
    stage,
    proxyUrl: root,
    baseURL: `${root}v1`,
    region,
    adminFunctionName: adminFunctionName(stage),
    ...(opts.lambdaEndpoint ? { lambdaEndpoint: opts.lambdaEndpoint } : {}),
    source,
  };
}

type Outputs = Record<string, unknown>;

/**
 * A path from OPENAI_WRAPI_OUTPUTS (or the local home) may be a folder of `<stage>.json`, a file with
 * one object per stage (the local stack's outputs.json), or one stack's outputs.
 */
function fromOutputs(stage: string, path: string, via: string, opts: TargetOptions, env: Env, required: boolean): StageTarget | undefined {
  const kind = statSync(path, { throwIfNoEntry: false });
  if (!kind) {
    if (!required) return undefined;
    throw new WrapiConfigError(`${via} points at ${path}, which does not exist.`);
  }
  let file = path;
  let outputs: Outputs;
  if (kind.isDirectory()) {
    file = join(path, `${stage}.json`);
    const json = readJson(file, via, false);
    if (!json) {
      const saved = readdirSync(path).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
      throw new WrapiConfigError(
        `${via} is the folder ${path}, which has no ${stage}.json.${saved.length ? ` It has stages ${stagesNote(stage, saved)}` : ''} ` +
          `Save the stage's outputs there: pulumi stack output --json --stack ${stage} > ${file}`,
      );
    }
    outputs = json;
  } else {
    outputs = readJson(file, via, true)!;
    const perStage = outputs[stage];
    if (isObject(perStage) && typeof perStage.proxyUrl === 'string') {
      outputs = perStage;
    } else if (typeof outputs.proxyUrl !== 'string') {
      const stages = stagesIn(outputs);
      if (!required) return undefined;
      throw new WrapiConfigError(
        `${file} (from ${via}) has no outputs for stage "${stage}".${stages.length ? ` It has stages ${stagesNote(stage, stages)}` : ''}`,
      );
    }
  }
  if (typeof outputs.proxyUrl !== 'string') throw new WrapiConfigError(`${file} (from ${via}) has no proxyUrl output.`);
  const own = stageOf(outputs);
  if (own && own !== stage) {
    throw new WrapiConfigError(
      `${file} (from ${via}) holds the outputs of stage "${own}", not "${stage}". Point OPENAI_WRAPI_OUTPUTS at a folder with one <stage>.json per stage.`,
    );
  }
  const region = typeof outputs.region === 'string' ? outputs.region : undefined;
  const lambdaEndpoint = typeof outputs.lambdaEndpoint === 'string' ? outputs.lambdaEndpoint : undefined;
  const target = fromUrl(stage, outputs.proxyUrl, `${file}`, {
    region: opts.region ?? region,
    lambdaEndpoint: opts.lambdaEndpoint ?? lambdaEndpoint,
  }, env);
  if (typeof outputs.adminFunctionName === 'string') target.adminFunctionName = outputs.adminFunctionName;
  if (typeof outputs.credentialsFile === 'string') target.credentialsFile = outputs.credentialsFile;
  return target;
}

/** A stack's own stage: a `stage` output, else the suffix of `openai-admin-<stage>`. */
function stageOf(outputs: Outputs): string | undefined {
  if (typeof outputs.stage === 'string') return outputs.stage;
  const admin = typeof outputs.adminFunctionName === 'string' ? outputs.adminFunctionName : '';
  return /^openai-admin-(.+)$/.exec(admin)?.[1];
}

const cache = new Map<string, { mtimeMs: number; size: number; json: Outputs }>();

/** Reads a JSON object, re-reading only when the file changed (the local stack rewrites it on start). */
function readJson(file: string, via: string, required: boolean): Outputs | undefined {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st) {
    if (!required) return undefined;
    throw new WrapiConfigError(`${via} points at ${file}, which does not exist.`);
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.json;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new WrapiConfigError(`${file} (from ${via}) is not valid JSON: ${err instanceof Error ? err.message : String(err)}.`);
  }
  if (!isObject(json)) throw new WrapiConfigError(`${file} (from ${via}) is not a JSON object of stack outputs.`);
  cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, json });
  return json;
}

const isObject = (v: unknown): v is Outputs => typeof v === 'object' && v !== null && !Array.isArray(v);
