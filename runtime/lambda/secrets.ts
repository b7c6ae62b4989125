// The stage's OpenAI key and org id. Deployed stacks keep them in Secrets Manager (named by
// OPENAI_WRAPI_SECRET_ARN) and read them once per cold start; without it, the environment is used.
type Env = Record<string, string | undefined>;

export async function loadSecrets(env: Env): Promise<Env> {
  const arn = env.OPENAI_WRAPI_SECRET_ARN;
  if (!arn) return {};
  const { readSecretJson } = await import('./secrets-manager.ts');
  const secret = await readSecretJson(arn, env.AWS_REGION ?? 'us-east-1');
  return { OPENAI_API_KEY: secret.openaiApiKey, OPENAI_ORG_ID: secret.openaiOrgId };
}
