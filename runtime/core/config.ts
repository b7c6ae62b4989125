// Typed configuration from an environment map. The core never reads the process environment: the
// composition roots (Lambda, local stack) pass theirs in.
import { ENV, stageEnvName } from './contract.ts';
import type { Nano } from './ports.ts';
import { usdToNano } from './pricing.ts';

export const DEFAULT_UPSTREAM_URL = 'https://api.openai.com/v1';

export interface ProxyConfig {
  stage: string;
  /** OpenAI-compatible base URL including `/v1`, no trailing slash. */
  upstreamUrl: string;
  apiKey?: string;
  orgId?: string;
  /** Limit for projects that have none of their own; undefined = such projects are refused. */
  defaultProjectLimit?: Nano;
  /** When the ledger is unreachable: refuse (false, default) or forward unmetered (true). */
  failOpen: boolean;
  /** Upper bound on the upstream call, whatever the client asks (the function's own timeout). */
  maxTimeoutMs: number;
  /** Function URLs accept at most 6 MB of request payload. */
  maxBodyBytes: number;
  cacheTtlSeconds: number;
  /** How long a warm instance may reuse limits and price overrides it read. */
  policyCacheMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Reads a stage's proxy configuration. Per-stage keys (`OPENAI_API_KEY_DEV`) beat the shared ones
 * (`OPENAI_API_KEY`). Throws ConfigError listing every bad value at once.
 */
export function readProxyConfig(env: Env, stage: string): ProxyConfig {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const value = env[stageEnvName(name, stage)] ?? env[name];
    return value?.trim() ? value.trim() : undefined;
  };
  const number = (name: string, fallback: number, min = 0): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) {
      problems.push(`${name} must be a number >= ${min} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const upstreamUrl = (get(ENV.upstreamUrl) ?? DEFAULT_UPSTREAM_URL).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(upstreamUrl)) problems.push(`${ENV.upstreamUrl} must be an http(s) URL`);
  const defaultLimit = get(ENV.defaultProjectLimit);
  const failOpen = get(ENV.failOpen);
  const config: ProxyConfig = {
    stage,
    upstreamUrl,
    apiKey: get(ENV.apiKey),
    orgId: get(ENV.orgId),
    defaultProjectLimit: defaultLimit === undefined ? undefined : usdToNano(number(ENV.defaultProjectLimit, 0)),
    failOpen: failOpen === '1' || failOpen === 'true',
    maxTimeoutMs: number(ENV.timeoutMs, 600_000, 1),
    maxBodyBytes: number(ENV.maxBodyBytes, 6 * 1024 * 1024, 1),
    cacheTtlSeconds: number(ENV.cacheTtlSeconds, 7 * 24 * 3600, 1),
    policyCacheMs: number(ENV.policyCacheMs, 5_000),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}
