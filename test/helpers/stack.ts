// Starts what a user runs: the fake OpenAI upstream and the local stack on free ports, in a fresh
// home folder, and makes real `openai` clients signed as one of the stack's users.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startFakeOpenAI, type FakeOpenAI } from '../../runtime/local/simulated-openai.ts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../../runtime/local/stack.ts';
import { addUser, loadOrCreateCredentials, type LocalUser } from '../../runtime/local/credentials.ts';
import { signedFetch } from '../../sdk/sign.ts';

export interface TestStack {
  stack: LocalStack;
  fake: FakeOpenAI;
  home: string;
  user(name: string, admin?: boolean): Promise<LocalUser>;
  client(opts?: { user?: string; project?: string; caching?: boolean; stage?: string; maxRetries?: number; headers?: Record<string, string> }): OpenAI;
  /** Signed fetch as a user, for raw requests. */
  fetchAs(user?: string): typeof fetch;
  admin(request: Record<string, unknown>, stage?: string): Promise<any>;
  close(): Promise<void>;
}

export async function startTestStack(opts: { env?: Record<string, string>; stack?: Partial<LocalStackOptions> } = {}): Promise<TestStack> {
  const fake = await startFakeOpenAI();
  const home = await mkdtemp(join(tmpdir(), 'wrapi-test-'));
  const stack = await startLocalStack({
    home,
    port: 0,
    env: { OPENAI_WRAPI_UPSTREAM_URL: fake.url, OPENAI_API_KEY: fake.apiKey, OPENAI_ORG_ID: 'org-test', ...opts.env },
    ...opts.stack,
  });
  const users = new Map<string, LocalUser>();
  for (const u of (await loadOrCreateCredentials(home)).users) users.set(u.name, u);
  const fetchAs = (name = 'default') => {
    const u = users.get(name);
    if (!u) throw new Error(`no such test user ${name}`);
    return signedFetch({ credentials: { accessKeyId: u.accessKeyId, secretAccessKey: u.secretAccessKey }, region: 'us-east-1' });
  };
  return {
    stack,
    fake,
    home,
    async user(name, admin = false) {
      const u = await addUser(home, name, admin);
      users.set(name, u);
      return u;
    },
    client({ user = 'default', project, caching, stage = 'dev', maxRetries = 0, headers = {} } = {}) {
      return new OpenAI({
        apiKey: 'not-used-by-the-proxy',
        baseURL: `${stack.url}/${stage}/v1`,
        fetch: fetchAs(user),
        maxRetries,
        defaultHeaders: {
          ...(project ? { 'openai-proxy-project': project } : {}),
          ...(caching === false ? { 'openai-proxy-caching': '0' } : {}),
          ...headers,
        },
      });
    },
    fetchAs,
    admin: (request, stage = 'dev') => stack.stages[stage].admin(request),
    async close() {
      await stack.close();
      await fake.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Waits until background settlement has landed (it runs after the response is complete). */
export async function settled(t: TestStack, check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('timed out waiting for settlement');
}
