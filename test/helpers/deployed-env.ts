// The environment a deployed proxy function gets (the program writes it; Lambda adds the region and
// the role's credentials), pointed at dynalite and the fake OpenAI, for tests that import the
// Lambda handlers in their own process (the handler reads it once per instance).
export function setDeployedEnv(opts: { table: string; dynamodbEndpoint: string; upstreamUrl: string; apiKey: string; extra?: Record<string, string> }): void {
  for (const name of ['OPENAI_WRAPI_MEMCACHED', 'OPENAI_WRAPI_SECRET_ARN', 'OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT']) delete process.env[name];
  Object.assign(process.env, {
    OPENAI_WRAPI_STAGE: 'dev',
    OPENAI_WRAPI_TABLE: opts.table,
    OPENAI_WRAPI_DYNAMODB_ENDPOINT: opts.dynamodbEndpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'ASIAEXAMPLEEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_SESSION_TOKEN: 'token',
    OPENAI_API_KEY: opts.apiKey,
    OPENAI_WRAPI_UPSTREAM_URL: opts.upstreamUrl,
    ...opts.extra,
  });
}
