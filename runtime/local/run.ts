// Runs the local stack until Ctrl-C or SIGTERM, telling the operator what runs where: as text, or
// (`openai-wrapi local --json`) as one JSON object per line, the first one saying where it runs.
import { inspect } from 'node:util';
import { startLocalStack, type LocalStack } from './stack.ts';
import type { Logger } from '../core/ports.ts';

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

const textLogger: Logger = {
  info(message, fields) {
    if (message !== 'call' || !fields) return console.log(line(message, fields));
    const f = fields as Record<string, unknown>;
    const cost = typeof f.cost === 'number' ? `$${(f.cost / 1e9).toFixed(6)}` : '';
    console.log(printable(`[${f.stage}] ${f.route} ${f.user} project=${f.project} model=${f.model} ${f.status ?? ''} ${cost} ${f.cache}${f.estimated ? ' (estimated)' : ''}`));
  },
  error: (message, fields) => console.error(line(message, fields)),
};

/** One JSON object per line, with what JSON leaves raw of those characters as `\u` escapes. */
const jsonLine = (value: unknown) =>
  JSON.stringify(value).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const jsonLogger: Logger = {
  info: (message, fields) => console.log(jsonLine({ event: message, ...fields })),
  error: (message, fields) => console.error(jsonLine({ event: message, level: 'error', ...fields })),
};

export async function runLocalStack(opts: { json?: boolean } = {}): Promise<void> {
  let stack: LocalStack;
  try {
    stack = await startLocalStack({ log: opts.json ? jsonLogger : textLogger });
  } catch (err) {
    const message = `could not start the local stack: ${err instanceof Error ? err.message : String(err)}`;
    console.error(opts.json ? jsonLine({ error: { message, code: 'local_stack_failed' } }) : `openai-wrapi: ${message}`);
    process.exit(1);
  }
  // Before the first line: a supervisor may stop the stack as soon as it reads it, and a signal
  // that finds no handler kills the process outright.
  const stop = async () => {
    await stack.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (opts.json) {
    console.log(jsonLine({
      event: 'started',
      url: stack.url,
      home: stack.home,
      credentialsFile: stack.credentialsFile,
      outputsFile: stack.outputsFile,
      dashboardUrl: stack.dashboardUrl,
      stages: Object.values(stack.stages).map((s) => ({ stage: s.stage, proxyUrl: `${stack.url}/${s.stage}/`, upstream: s.config.upstreamUrl, stores: s.stores })),
      warnings: stack.warnings,
    }));
  } else {
    console.log(`openai-wrapi local stack on ${stack.url}`);
    console.log(`  data:        ${stack.home}`);
    console.log(`  credentials: ${stack.credentialsFile} (profile "default" is an admin)`);
    console.log(`  outputs:     ${stack.outputsFile}`);
    console.log(`  dashboard:   ${stack.dashboardUrl}  (the link carries a secret token; it changes at every start)`);
    for (const s of Object.values(stack.stages)) {
      console.log(`  ${s.stage}: proxy ${stack.url}/${s.stage}/  upstream ${s.config.upstreamUrl}  (${s.stores})`);
    }
    for (const w of stack.warnings) console.log(`  ! ${w}`);
  }
}
