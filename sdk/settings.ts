// Process-wide defaults: project, staging and caching. Kept on `globalThis` under a registered
// symbol so the ESM and the CommonJS builds of this package, if both get loaded, share them.
import { DEFAULT_PROJECT } from '../runtime/core/protocol.ts';
import { WrapiConfigError } from './errors.ts';

type Env = Record<string, string | undefined>;

export interface Settings {
  /** The project calls are billed to (`openai-proxy-project`). */
  project: string;
  /** The stage whose proxy is called, e.g. `dev` or `prod`. */
  staging: string;
  /** Whether the proxy may answer from its response cache. */
  caching: boolean;
}

interface State {
  project?: string;
  staging?: string;
  caching?: boolean;
}

const KEY = Symbol.for('openai-wrapi.settings');
const state: State = ((globalThis as Record<symbol, unknown>)[KEY] as State | undefined) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = {} as State);

export const DEFAULT_STAGING = 'dev';

/** Sets the project of the clients created afterwards and of clients other libraries build. */
export function setProject(project: string): void {
  state.project = checkProject(project);
}

/** Sets the stage (`dev`, `prod`, ...) of the clients created afterwards and of library clients. */
export function setStaging(staging: string): void {
  state.staging = checkStaging(staging);
}

/** Turns the proxy's response cache on (default) or off for later clients and library clients. */
export function setCaching(caching: boolean): void {
  if (typeof caching !== 'boolean') throw new WrapiConfigError(`setCaching expects true or false (got ${JSON.stringify(caching)}).`);
  state.caching = caching;
}

/**
 * The current defaults: what `set*` chose, else `OPENAI_DEFAULT_PROJECT`, `OPENAI_DEFAULT_STAGING`,
 * `OPENAI_DEFAULT_CACHING`, else `N/A`, `dev` and caching on. The environment is read on each call.
 */
export function getSettings(env: Env = process.env): Settings {
  return {
    project: state.project ?? checkProject(readEnv(env, 'OPENAI_DEFAULT_PROJECT') ?? DEFAULT_PROJECT, 'OPENAI_DEFAULT_PROJECT'),
    staging: state.staging ?? checkStaging(readEnv(env, 'OPENAI_DEFAULT_STAGING') ?? DEFAULT_STAGING, 'OPENAI_DEFAULT_STAGING'),
    caching: state.caching ?? parseFlag(readEnv(env, 'OPENAI_DEFAULT_CACHING'), true, 'OPENAI_DEFAULT_CACHING'),
  };
}

/** Forgets what `set*` chose (tests, long-lived processes that reconfigure). */
export function resetSettings(): void {
  delete state.project;
  delete state.staging;
  delete state.caching;
}

export function readEnv(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

// The server's rule for names (no "#", no control or invisible formatting character, at most 128),
// within what an HTTP header carries (Latin-1), with no space at either end: HTTP trims header
// values, so calls would land on another project. In Latin-1, C1 controls and the soft hyphen are
// the server's other refusals.
const PROJECT = /^[^#\s\x00-\x1f\x7f-\x9f\xad][^#\x00-\x1f\x7f-\x9f\xad]{0,127}(?<!\s)$/;
export const PROJECT_RULE =
  '1-128 Latin-1 characters (what an HTTP header carries), without "#", control characters or soft hyphens, and not starting or ending with a space';
const STAGE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function checkProject(project: unknown, source = 'project'): string {
  if (typeof project !== 'string' || !PROJECT.test(project) || /[^\x00-\xff]/.test(project)) {
    throw new WrapiConfigError(`${source} must be ${PROJECT_RULE} (got ${JSON.stringify(project)}).`);
  }
  return project;
}

export function checkStaging(staging: unknown, source = 'staging'): string {
  if (typeof staging !== 'string' || !STAGE.test(staging)) {
    throw new WrapiConfigError(`${source} must be a stage name such as "dev" or "prod" (got ${JSON.stringify(staging)}).`);
  }
  return staging;
}

function parseFlag(value: string | undefined, fallback: boolean, source: string): boolean {
  if (value === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new WrapiConfigError(`${source} must be 1 or 0 (got ${JSON.stringify(value)}).`);
}
