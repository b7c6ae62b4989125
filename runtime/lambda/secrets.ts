// The stage's OpenAI key and org id. Deployed stacks keep them in Secrets Manager (named by
// OPENAI_WRAPI_SECRET_ARN); without a secret, the environment is used. An instance reads the
// secret's current version at cold start, and again when OpenAI refuses the key (lambda/proxy.ts).
import type { ProxyConfig } from '../core/config.ts';
import type { ProxySettings } from './settings.ts';

export interface Credentials {
  config: ProxyConfig;
  /** The version read; undefined without a secret. */
  versionId?: string;
  /** The current version is not the one `pulumi up` deployed with this configuration. */
  notDeployed: boolean;
}

/** The proxy's configuration with the secret's credentials in place of the environment's. */
export async function withCredentials(settings: ProxySettings): Promise<Credentials> {
  if (!settings.secret) return { config: settings.config, notDeployed: false };
  const { readSecretJson } = await import('./secrets-manager.ts');
  const { arn, region, versionId: deployed } = settings.secret;
  const { value, versionId } = await readSecretJson(arn, region);
  const clean = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
  return {
    config: { ...settings.config, apiKey: clean(value.openaiApiKey), orgId: clean(value.openaiOrgId) },
    versionId,
    notDeployed: deployed !== undefined && versionId !== deployed,
  };
}
