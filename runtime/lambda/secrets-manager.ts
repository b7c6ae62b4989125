import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/** The secret is a JSON object: `{ "openaiApiKey": "sk-…", "openaiOrgId": "org-…" }`. */
export async function readSecretJson(arn: string, region: string): Promise<{ openaiApiKey?: string; openaiOrgId?: string }> {
  const client = new SecretsManagerClient({ region });
  const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  return JSON.parse(out.SecretString ?? '{}');
}
