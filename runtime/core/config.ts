// Typed configuration from an environment map. The core never reads the process environment: the
// composition roots (Lambda, local stack) pass theirs in.
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
    const value = env[`${name}_${stage.toUpperCase()}`] ?? env[name];
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
  const upstreamUrl = (get('OPENAI_WRAPI_UPSTREAM_URL') ?? DEFAULT_UPSTREAM_URL).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(upstreamUrl)) problems.push(`OPENAI_WRAPI_UPSTREAM_URL must be an http(s) URL`);
  const defaultLimit = get('OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT');
  const config: ProxyConfig = {
    stage,
    upstreamUrl,
    apiKey: get('OPENAI_API_KEY'),
    orgId: get('OPENAI_ORG_ID'),
    defaultProjectLimit:
      defaultLimit === undefined ? undefined : usdToNano(number('OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT', 0)),
    failOpen: get('OPENAI_WRAPI_FAIL_OPEN') === '1' || get('OPENAI_WRAPI_FAIL_OPEN') === 'true',
    maxTimeoutMs: number('OPENAI_WRAPI_TIMEOUT_MS', 600_000, 1),
    maxBodyBytes: number('OPENAI_WRAPI_MAX_BODY_BYTES', 6 * 1024 * 1024, 1),
    cacheTtlSeconds: number('OPENAI_WRAPI_CACHE_TTL', 7 * 24 * 3600, 1),
    policyCacheMs: number('OPENAI_WRAPI_POLICY_CACHE_MS', 5_000),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}
