// The environment an SDK user has against the local stack: its outputs file found through
// OPENAI_WRAPI_OUTPUTS and its credentials file as the AWS shared-credentials file, so the SDK's
// own resolution and the standard AWS credential chain are what the tests exercise.
import { startTestStack, type TestStack } from './stack.ts';

export interface SdkStack extends TestStack {
  /** The variables an SDK user would set (also applied to this process). */
  env: Record<string, string>;
}

/** Variables that would let the machine's own AWS or OpenAI setup leak into a test. */
const CLEARED = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE',
  'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'OPENAI_WRAPI_HOME', 'OPENAI_WRAPI_OUTPUTS',
  'OPENAI_DEFAULT_PROJECT', 'OPENAI_DEFAULT_STAGING', 'OPENAI_DEFAULT_CACHING',
];

/** Users are added before anything reads the credentials file (the AWS SDK caches what it read). */
export async function startSdkStack(
  users: [name: string, admin: boolean][] = [],
  opts: Parameters<typeof startTestStack>[0] = {},
): Promise<SdkStack> {
  const t = await startTestStack(opts);
  for (const [name, admin] of users) await t.user(name, admin);
  const env = {
    OPENAI_WRAPI_OUTPUTS: t.stack.outputsFile,
    AWS_SHARED_CREDENTIALS_FILE: `${t.home}/credentials`,
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_PROFILE: 'default',
    // Never ask an instance metadata endpoint for credentials from a test.
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const name of CLEARED) delete process.env[name];
  Object.assign(process.env, env);
  return Object.assign(t, { env });
}

/** A clean environment for a subprocess: the machine's PATH and HOME plus `env`. */
export function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!CLEARED.includes(k)) base[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

export const chat = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });
