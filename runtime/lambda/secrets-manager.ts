import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/** The secret's current version: a JSON object `{ "openaiApiKey": "sk-…", "openaiOrgId": "org-…" }`, and its id. */
export async function readSecretJson(arn: string, region: string): Promise<{ value: { openaiApiKey?: string; openaiOrgId?: string }; versionId?: string }> {
  const client = new SecretsManagerClient({ region });
  const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  return { value: JSON.parse(out.SecretString ?? '{}'), versionId: out.VersionId };
}

/** A secret's current text (the notifier's webhook URL), as it is stored. */
export async function readSecretString(arn: string, region: string): Promise<string | undefined> {
  const client = new SecretsManagerClient({ region });
  const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  return out.SecretString;
}
