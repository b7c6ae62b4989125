// The stage's OpenAI key and org id. Deployed stacks keep them in Secrets Manager (named by
// OPENAI_WRAPI_SECRET_ARN) and read them once per cold start; without it, the environment is used.
import type { ProxyConfig } from '../core/config.ts';
import type { ProxySettings } from './settings.ts';

/** The proxy's configuration with the secret's credentials in place of the environment's. */
export async function withCredentials(settings: ProxySettings): Promise<ProxyConfig> {
  if (!settings.secret) return settings.config;
  const { readSecretJson } = await import('./secrets-manager.ts');
  const secret = await readSecretJson(settings.secret.arn, settings.secret.region);
  const clean = (value: unknown) => (typeof value === 'string' && value.trim() ? value.trim() : undefined);
  return { ...settings.config, apiKey: clean(secret.openaiApiKey), orgId: clean(secret.openaiOrgId) };
}
