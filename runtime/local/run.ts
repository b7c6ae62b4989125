// Runs the local stack until Ctrl-C or SIGTERM, telling the operator what runs where: as text, or
// (`openai-wrapi local --json`) as one JSON object per line, the first one saying where it runs.
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { startLocalStack, type LocalStack } from './stack.ts';
import type { Logger } from '../core/ports.ts';
import { ENV, LOCAL_ENV } from '../core/contract.ts';
import type { FakeOpenAI } from './simulated-openai.ts';

/**
 * Control and bidi characters as visible escapes (`\x1b`, `\u{202e}`): a terminal would act on
 * them. The rule of the CLI's printable() in sdk/cli-format.ts; the runtime does not import the SDK.
 */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const printable = (text: string) =>
  text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });

/** One line per event; names in it are escaped. */
const line = (message: string, fields?: Record<string, unknown>) =>
  printable(fields ? `${message} ${inspect(fields, { breakLength: Infinity })}` : message);

/** Call lines as text; in demo mode each one says its answer was simulated (the cost is what OpenAI would bill). */
const textLogger = (demo: boolean): Logger => ({
  info(message, fields) {
    if (message !== 'call' || !fields) return console.log(line(message, fields));
    const f = fields as Record<string, unknown>;
    const cost = typeof f.cost === 'number' ? `$${(f.cost / 1e9).toFixed(6)}` : '';
    const tail = `${f.estimated ? ' (estimated)' : ''}${demo ? ' (simulated: nothing billed)' : ''}`;
    console.log(printable(`[${f.stage}] ${f.route} ${f.user} project=${f.project} model=${f.model} ${f.status ?? ''} ${cost} ${f.cache}${tail}`));
  },
  error: (message, fields) => console.error(line(message, fields)),
});

/** One JSON object per line, with what JSON leaves raw of those characters as `\u` escapes. */
const jsonLine = (value: unknown) =>
  JSON.stringify(value).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const jsonLogger = (demo: boolean): Logger => ({
  info: (message, fields) => console.log(jsonLine({ event: message, ...fields, ...(demo && message === 'call' ? { simulated: true } : {}) })),
  error: (message, fields) => console.error(jsonLine({ event: message, level: 'error', ...fields })),
});

/** `--demo` or OPENAI_WRAPI_DEMO=1: only when asked for, never because a key is missing. */
export const demoRequested = (argv: string[], env: NodeJS.ProcessEnv) => argv.includes('--demo') || env[LOCAL_ENV.demo] === '1';

/**
 * Demo mode: every stage's upstream is the simulated OpenAI on loopback, with a key made up for this
 * run, whatever OpenAI key or upstream the environment holds (so a demo can never spend money).
 */
async function startDemoUpstream(env: NodeJS.ProcessEnv): Promise<{ simulated: FakeOpenAI; env: NodeJS.ProcessEnv }> {
  const { startFakeOpenAI } = await import('./simulated-openai.ts');
  const simulated = await startFakeOpenAI({ demo: true, apiKey: `sk-demo-${randomBytes(12).toString('hex')}` });
  // The variables and their per-stage overrides (`OPENAI_API_KEY_DEV`) are all left out.
  const replaced = [ENV.apiKey, ENV.orgId, ENV.upstreamUrl];
  const demoEnv: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (!replaced.some((r) => name === r || name.startsWith(`${r}_`))) demoEnv[name] = value;
  }
  return { simulated, env: { ...demoEnv, [ENV.apiKey]: simulated.apiKey, [ENV.upstreamUrl]: simulated.url } };
}

export async function runLocalStack(opts: { json?: boolean; demo?: boolean } = {}): Promise<void> {
  const demo = opts.demo ?? demoRequested(process.argv.slice(2), process.env);
  let stack: LocalStack;
  let simulated: FakeOpenAI | undefined;
  try {
    let env = process.env;
    if (demo) ({ simulated, env } = await startDemoUpstream(process.env));
    stack = await startLocalStack({
      env, log: opts.json ? jsonLogger(demo) : textLogger(demo), simulatedUpstream: demo, ...(opts.json ? {} : { printAlert: (text: string) => console.log(text) }),
    });
  } catch (err) {
    await simulated?.close();
    const message = `could not start the local stack: ${err instanceof Error ? err.message : String(err)}`;
    console.error(opts.json ? jsonLine({ error: { message, code: 'local_stack_failed' } }) : `openai-wrapi: ${message}`);
    process.exit(1);
  }
  // Before the first line: a supervisor may stop the stack as soon as it reads it, and a signal
  // that finds no handler kills the process outright.
  const stop = async () => {
    await stack.close();
    await simulated?.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const access = stack.publicAccess;
  if (opts.json) {
    console.log(jsonLine({
      event: 'started',
      url: stack.url,
      home: stack.home,
      credentialsFile: stack.credentialsFile,
      outputsFile: stack.outputsFile,
      dashboardUrl: stack.dashboardUrl,
      stages: Object.values(stack.stages).map((s) => ({ stage: s.stage, proxyUrl: `${stack.url}/${s.stage}/`, upstream: s.config.upstreamUrl, stores: s.stores })),
      ...(demo ? { simulated: true } : {}),
      ...(access ? { publicAccess: { ...access, urls: Object.keys(stack.stages).map((st) => `${stack.url}/public/${st}/v1`) } } : {}),
      warnings: stack.warnings,
    }));
  } else {
    console.log(`openai-wrapi local stack on ${stack.url}${demo ? ' (demo: a simulated OpenAI answers every call)' : ''}`);
    if (demo) {
      console.log('  DEMO MODE: no call reaches OpenAI and nothing is billed. Answers are simulated, costs are what');
      console.log('  OpenAI would bill for them. Without --demo, the stack calls OpenAI with OPENAI_API_KEY.');
    }
    console.log(`  data:        ${stack.home}`);
    console.log(`  credentials: ${stack.credentialsFile} (profile "default" is an admin)`);
    console.log(`  outputs:     ${stack.outputsFile}`);
    console.log(`  dashboard:   ${stack.dashboardUrl}  (the link carries a secret token; it changes at every start)`);
    for (const s of Object.values(stack.stages)) {
      console.log(`  ${s.stage}: proxy ${stack.url}/${s.stage}/  upstream ${s.config.upstreamUrl}${demo ? ' (simulated)' : ''}  (${s.stores})`);
    }
    if (access) {
      const limits = [access.perClient.rpm && `${access.perClient.rpm} requests`, access.perClient.tpm && `${access.perClient.tpm} tokens`].filter(Boolean).join(' and ');
      console.log(`  public:      ${stack.url}/public/<stage>/v1 for pages of ${access.origins.join(', ')}: billed to project "${access.project}", ${limits} a minute per client`);
    }
    for (const w of stack.warnings) console.log(`  ! ${w}`);
  }
}
