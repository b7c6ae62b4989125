// A cold Lambda instance in a process of its own: imports a deployed proxy archive (written to a
// directory) the way the runtime does, then makes the calls a plan file lists, and after each step
// reports which of the archive's files Node has loaded so far. Used by test/lambda-bundle.test.ts:
//   node --import tsx test/helpers/lambda-cold-start.ts <plan.json>
// The plan: { dir, calls: [{ label, event }], count? }; the environment (ledger, upstream, secret) is
// the parent's. Prints one JSON line: { steps: [{ label, loaded, status?, body? }], counted? }.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Module hooks run on their own thread: each module file Node loads is appended to a log file. */
const LOG_LOADS_HOOK = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:')) appendFileSync(log, url + '\\n');
  return nextLoad(url, context);
}`;

export interface ColdStartPlan {
  dir: string;
  calls: { label: string; event: unknown }[];
  /** After the calls: count `text` with the `countTokens` that the archive file `chunk` exports. */
  count?: { chunk: string; text: string };
}

export interface ColdStartStep {
  label: string;
  /** Archive paths (`proxy.mjs`, `chunks/…`) loaded by the end of this step, in path order. */
  loaded: string[];
  status?: number;
  body?: string;
}

const plan: ColdStartPlan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = join(plan.dir, '..', `loads-${process.pid}.log`);
writeFileSync(log, '');
register(`data:text/javascript,${encodeURIComponent(LOG_LOADS_HOOK)}`, import.meta.url, { data: { log } });

const base = pathToFileURL(join(plan.dir, '/')).href;
const loaded = () =>
  [...new Set(readFileSync(log, 'utf8').split('\n').filter((url) => url.startsWith(base)).map((url) => url.slice(base.length)))].sort();

// The Lambda runtime's globals exist before the function's code loads.
const { invokeStreaming } = await import('./awslambda-stub.ts');
const steps: ColdStartStep[] = [];
const { handler } = await import(new URL('proxy.mjs', base).href);
steps.push({ label: 'import', loaded: loaded() });
for (const { label, event } of plan.calls) {
  const r = await invokeStreaming(handler, event as never);
  steps.push({ label, loaded: loaded(), status: r.statusCode, body: r.body });
}
const counted = plan.count && (await import(new URL(plan.count.chunk, base).href)).countTokens(plan.count.text);
appendFileSync(1, `${JSON.stringify({ steps, counted })}\n`);
