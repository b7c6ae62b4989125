// The commands of the `openai-wrapi` CLI: what each one does and prints. Parsing, help and exit
// codes are in cli.ts.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import * as admin from './admin.ts';
import { count, formatTable, percent, price, printable, safeJson, usd } from './cli-format.ts';
import { WrapiError } from './errors.ts';
import { checkProject, PROJECT_RULE } from './settings.ts';
import { resolveTarget } from './target.ts';
import { isUsdAmount, MAX_USD, MIN_USD } from '../runtime/core/protocol.ts';
import type { LimitDto, LimitKind, LimitStatus } from '../runtime/core/protocol.ts';

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; help: string; arg?: string };
export type Values = Record<string, string | boolean | undefined>;

export interface Ctx {
  values: Values;
  args: string[];
  stage: string;
  json: boolean;
}

export interface Command {
  path: string;
  args?: string[];
  summary: string;
  options?: Record<string, OptionSpec>;
  run(ctx: Ctx): Promise<number | void>;
}

/** Bad usage: exit code 2. */
export class UsageError extends Error {}

export const GLOBAL: Record<string, OptionSpec> = {
  stage: { type: 'string', arg: 'STAGE', help: 'the stage (default $OPENAI_DEFAULT_STAGING or dev)' },
  json: { type: 'boolean', help: 'machine-readable output (JSON on stdout; errors as JSON on stderr)' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

const SCOPE: Record<string, OptionSpec> = {
  project: { type: 'string', arg: 'NAME', help: 'the project (required)' },
  user: { type: 'string', arg: 'NAME', help: 'only this user (default: any)' },
  model: { type: 'string', arg: 'MODEL', help: 'only this model (default: any)' },
};

const MEMBER: Record<string, OptionSpec> = {
  project: { type: 'string', arg: 'NAME', help: 'the project (required)' },
  user: { type: 'string', arg: 'NAME', help: 'a caller as the proxy names it: alice, Role/session (this or --role)' },
  role: { type: 'string', arg: 'ROLE', help: 'an IAM role: everyone who comes through it (this or --user)' },
};

const HOME: OptionSpec = { type: 'string', arg: 'DIR', help: 'the local stack\'s data folder (default $OPENAI_WRAPI_HOME or .openai-wrapi)' };

export const COMMANDS: Command[] = [
  {
    path: 'limits set',
    summary: 'set limits of a project, or a user and/or model within it: USD per month or day (and their alert thresholds), requests or tokens per minute',
    options: {
      ...SCOPE,
      limit: { type: 'string', arg: 'USD', help: 'USD per --period' },
      period: { type: 'string', arg: 'month|day', help: 'what --limit is per: month (default, calendar month in UTC) or day (UTC)' },
      rpm: { type: 'string', arg: 'N', help: 'requests per minute (cache hits count)' },
      tpm: { type: 'string', arg: 'N', help: 'tokens per minute (input + worst-case output while a call runs)' },
      alerts: { type: 'string', arg: '50,80,100|none', help: 'alert thresholds of --limit, percent (default 80,100; kept when not given)' },
    },
    async run({ values, stage, json }) {
      const period = periodFlag(values.period);
      if (period !== undefined && values.limit === undefined) throw new UsageError('--period goes with --limit');
      if (values.alerts !== undefined && values.limit === undefined) throw new UsageError('--alerts goes with --limit: the thresholds are percents of that USD limit');
      const limit = values.limit === undefined ? undefined : amount(values.limit, 'limit');
      const rpm = values.rpm === undefined ? undefined : wholeNumber(values.rpm, 'rpm');
      const tpm = values.tpm === undefined ? undefined : wholeNumber(values.tpm, 'tpm');
      const alerts = values.alerts === undefined ? undefined : alertsFlag(values.alerts);
      if (limit === undefined && rpm === undefined && tpm === undefined) throw new UsageError('--limit is required (USD per --period), or give --rpm N or --tpm N');
      const set = await admin.setLimits({ staging: stage, ...scopeOf(values), limit, period, rpm, tpm, alerts });
      const one = [limit, rpm, tpm].filter((v) => v !== undefined).length === 1;
      print(json, set, () => `Limit${one ? '' : 's'} of ${describe(set)} in stage ${stage}: ${limitsText(set)}.`);
    },
  },
  {
    path: 'limits rm',
    summary: 'remove limits (same --project/--user/--model as when set); --period, --rpm or --tpm removes only that one',
    options: {
      ...SCOPE,
      period: { type: 'string', arg: 'month|day', help: 'only the USD limit per month or per day' },
      rpm: { type: 'boolean', help: 'only the requests-per-minute limit' },
      tpm: { type: 'boolean', help: 'only the tokens-per-minute limit' },
    },
    async run({ values, stage, json }) {
      const scope = scopeOf(values);
      const kinds = [periodFlag(values.period), values.rpm ? 'rpm' : undefined, values.tpm ? 'tpm' : undefined].filter((k) => k !== undefined);
      if (kinds.length > 1) throw new UsageError('give at most one of --period, --rpm, --tpm');
      const kind = kinds[0] as LimitKind | undefined;
      await admin.removeLimit({ staging: stage, ...scope, kind });
      const what = kind ? `the ${KIND_TEXT[kind]} limit` : 'the limits';
      print(json, { removed: { user: '*', model: '*', ...scope, ...(kind ? { kind } : {}) } }, () => `Removed ${what} of ${describe(scope)} in stage ${stage}.`);
    },
  },
  {
    path: 'limits ls',
    summary: 'list limits with their use: this month, today (UTC), this minute',
    options: { project: { type: 'string', arg: 'NAME', help: 'only this project' } },
    async run({ values, stage, json }) {
      const report = await admin.getLimits({ staging: stage, project: str(values.project) });
      print(json, report, () => {
        if (!report.limits.length) return `No limits in stage ${stage}${values.project ? ` for project "${printable(String(values.project))}"` : ''}.`;
        const of = (used: string, limit: number | undefined, share: number) => (limit === undefined ? '-' : `${used} (${percent(share, limit)})`);
        // Only the kinds of limit some row has: a stage with monthly limits alone reads as before.
        const kinds = [
          { has: (l: LimitStatus) => l.limit !== undefined, head: ['PER MONTH', 'THIS MONTH'],
            cells: (l: LimitStatus) => [l.limit === undefined ? '-' : usd(l.limit), of(usd(l.committed), l.limit, l.committed)] },
          { has: (l: LimitStatus) => l.dailyLimit !== undefined, head: ['PER DAY', 'TODAY'],
            cells: (l: LimitStatus) => [l.dailyLimit === undefined ? '-' : usd(l.dailyLimit), of(usd(l.today), l.dailyLimit, l.today)] },
          { has: (l: LimitStatus) => l.rpm !== undefined, head: ['RPM', 'THIS MINUTE'],
            cells: (l: LimitStatus) => [l.rpm === undefined ? '-' : count(l.rpm), of(count(l.minuteRequests), l.rpm, l.minuteRequests)] },
          { has: (l: LimitStatus) => l.tpm !== undefined, head: ['TPM', 'THIS MINUTE'],
            cells: (l: LimitStatus) => [l.tpm === undefined ? '-' : count(l.tpm), of(count(l.minuteTokens), l.tpm, l.minuteTokens)] },
        ].filter((k) => report.limits.some(k.has));
        // The thresholds of the USD limits (an admin function from before alerts sends none).
        const alerts = report.limits.some((l) => l.alerts || l.dailyAlerts);
        const rows = report.limits.map((l) => [l.project, l.user, l.model, ...kinds.flatMap((k) => k.cells(l)), ...(alerts ? [alertsCell(l)] : [])]);
        const head = ['PROJECT', 'USER', 'MODEL', ...kinds.flatMap((k) => k.head), ...(alerts ? ['ALERTS'] : [])];
        const daily = kinds.some((k) => k.head[0] === 'PER DAY');
        return `Limits in stage ${stage}, ${report.month}${daily ? ` (today ${report.day})` : ''}; use is spent + reserved:\n` +
          formatTable(head, rows, head.map((h, i) => (i < 3 || h === 'ALERTS' ? 'left' : 'right')));
      });
    },
  },
  {
    path: 'alerts ls',
    summary: 'list the budget alerts of a month: each alert threshold of a USD limit that settled spend reached',
    options: { month: { type: 'string', arg: 'YYYY-MM', help: 'the month (default: this one, UTC)' } },
    async run({ values, stage, json }) {
      const month = monthFlag(values.month);
      const report = await admin.listAlerts({ staging: stage, month });
      print(json, report, () => {
        if (!report.alerts.length) {
          return `No budget alerts in stage ${stage} in ${report.month}. An alert is made when settled spend reaches a threshold of a USD limit ` +
            '(80% and 100% unless set with limits set --alerts).';
        }
        const rows = report.alerts.map((a) => [
          a.at.slice(0, 19).replace('T', ' '), a.project, a.user, a.model, a.period === 'day' ? `day ${a.day ?? ''}` : 'month',
          `${a.threshold}%`, usd(a.spend), usd(a.limit),
        ]);
        return `Budget alerts in stage ${stage}, ${report.month}, newest first:\n` +
          formatTable(['TIME (UTC)', 'PROJECT', 'USER', 'MODEL', 'PERIOD', 'THRESHOLD', 'SPENT', 'LIMIT'], rows,
            ['left', 'left', 'left', 'left', 'left', 'right', 'right', 'right']);
      });
    },
  },
  {
    path: 'digest',
    summary: 'show the daily digest as of now (the month so far, the day before, limits near or over); --send also publishes it',
    options: { send: { type: 'boolean', help: 'also publish it to the stage\'s alert topic (needs the stack setting dailyDigest)' } },
    async run({ values, stage, json }) {
      const report = await admin.getDigest({ staging: stage, send: values.send === true });
      print(json, report, () => {
        // Names in the text are the callers' own: shown as visible escapes where a terminal would act on them.
        const text = report.text.split('\n').map(printable).join('\n');
        const sent = report.published ? `\n\nSent to the alert topic of stage ${stage} (message ${report.messageId}).` : '';
        return `${printable(report.subject)}\n\n${text}${sent}`;
      });
    },
  },
  {
    path: 'usage',
    summary: 'usage and spend of a month, grouped by user, project or model',
    options: {
      month: { type: 'string', arg: 'YYYY-MM', help: 'the month (default: this one, UTC)' },
      by: { type: 'string', arg: 'user|project|model', help: 'how to group (default: user)' },
      daily: { type: 'boolean', help: 'also list spend per day' },
    },
    async run({ values, stage, json }) {
      const month = monthFlag(values.month);
      const by = str(values.by) ?? 'user';
      if (by !== 'user' && by !== 'project' && by !== 'model') throw new UsageError(`--by must be user, project or model (got "${printable(by)}")`);
      const report = await admin.getUsage({ staging: stage, month, by, daily: values.daily === true });
      print(json, report, () => usageText(report));
    },
  },
  {
    path: 'prices set',
    summary: 'set a model\'s price (USD per 1M tokens), overriding the shipped table for it and every dated id of it',
    options: {
      model: { type: 'string', arg: 'MODEL', help: 'the model id or family, e.g. gpt-4o (required)' },
      input: { type: 'string', arg: 'USD', help: 'per 1M input tokens (required)' },
      output: { type: 'string', arg: 'USD', help: 'per 1M output tokens (required)' },
      'cached-input': { type: 'string', arg: 'USD', help: 'per 1M cached input tokens (default: the input price)' },
      'cache-write': { type: 'string', arg: 'USD', help: 'per 1M input tokens written to the prompt cache (default: the table\'s, else the input price)' },
      'long-context-threshold': { type: 'string', arg: 'TOKENS', help: 'above this many input tokens the long-context rates apply to the whole request' },
      'long-context-input': { type: 'string', arg: 'USD', help: 'per 1M input tokens above the threshold' },
      'long-context-cached-input': { type: 'string', arg: 'USD', help: 'per 1M cached input tokens above the threshold (default: its input price)' },
      'long-context-output': { type: 'string', arg: 'USD', help: 'per 1M output tokens above the threshold' },
      'audio-input': { type: 'string', arg: 'USD', help: 'per 1M audio input tokens' },
      'audio-cached-input': { type: 'string', arg: 'USD', help: 'per 1M cached audio input tokens' },
      'audio-output': { type: 'string', arg: 'USD', help: 'per 1M audio output tokens' },
    },
    async run({ values, stage, json }) {
      const model = required(values, 'model');
      const cached = values['cached-input'];
      const write = values['cache-write'];
      const set = await admin.setPrice({
        staging: stage, model, input: amount(values.input, 'input'), output: amount(values.output, 'output'),
        ...(cached !== undefined ? { cachedInput: amount(cached, 'cached-input') } : {}),
        ...(write !== undefined ? { cacheWrite: amount(write, 'cache-write') } : {}),
        ...longContextFlags(values),
        ...audioFlags(values),
      });
      print(json, set, () =>
        `Price of ${printable(set.model)} in stage ${stage}: input $${price(set.input)}, cached input ${set.cachedInput == null ? '(as input)' : `$${price(set.cachedInput)}`}, output $${price(set.output)} per 1M tokens` +
          (set.cacheWrite !== undefined ? `; cache writes $${price(set.cacheWrite)}` : '') +
          (set.longContext ? `; above ${count(set.longContext.thresholdInputTokens)} input tokens ${rates(set.longContext)}` : '') +
          (set.audio ? `; audio ${rates(set.audio)}` : '') + '.' +
          keptNote([set.cacheWrite === undefined && 'cache-write', !set.longContext && 'long-context', !set.audio && 'audio']),
      );
    },
  },
  {
    path: 'prices rm',
    summary: 'remove a price override (the shipped price applies again)',
    options: { model: { type: 'string', arg: 'MODEL', help: 'the model (required)' } },
    async run({ values, stage, json }) {
      const model = required(values, 'model');
      await admin.removePrice({ staging: stage, model });
      print(json, { removed: model }, () => `Removed the price override of ${printable(model)} in stage ${stage}.`);
    },
  },
  {
    path: 'prices ls',
    summary: 'list prices (shipped table and overrides), or the one that applies to a model',
    options: { model: { type: 'string', arg: 'MODEL', help: 'only the price that applies to this model' } },
    async run({ values, stage, json }) {
      const report = await admin.getPrices({ staging: stage, model: str(values.model) });
      print(json, report, () => {
        const source = (p: admin.PriceDto) => (p.overrideModel ? `${p.source} of ${p.overrideModel}` : p.source ?? '');
        const rows = report.prices.map((p) => [p.model, price(p.input), price(p.cachedInput), price(p.output), source(p)]);
        const asOf = report.table ? `; table of ${report.table.asOf}` : '';
        const text = `Prices in stage ${stage} (USD per 1M tokens${asOf}):\n` +
          formatTable(['MODEL', 'INPUT', 'CACHED', 'OUTPUT', 'SOURCE'], rows, ['left', 'right', 'right', 'right', 'left']);
        // Most models have neither, so these rates get their own table rather than empty columns.
        const extra = report.prices.filter((p) => p.longContext || p.audio || p.cacheWrite !== undefined).map((p) => [
          p.model,
          price(p.cacheWrite),
          p.longContext ? count(p.longContext.thresholdInputTokens) : '-',
          price(p.longContext?.input), price(p.longContext?.cachedInput), price(p.longContext?.output),
          price(p.audio?.input), price(p.audio?.cachedInput), price(p.audio?.output),
        ]);
        if (extra.length === 0) return text;
        return `${text}\n\nCache-write, long-context and audio rates (USD per 1M tokens; long context applies above THRESHOLD input tokens):\n` +
          formatTable(
            ['MODEL', 'CACHE WRITE', 'THRESHOLD', 'LC INPUT', 'LC CACHED', 'LC OUTPUT', 'AUDIO INPUT', 'AUDIO CACHED', 'AUDIO OUTPUT'],
            extra,
            ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
          );
      });
    },
  },
  {
    path: 'projects grant',
    summary: 'open a project only to its members: add a user, or everyone who comes through a role',
    options: MEMBER,
    async run({ values, stage, json }) {
      const granted = await admin.grantMember({ staging: stage, ...memberOf(values) });
      print(json, granted, () =>
        `${granted.added ? 'Added' : 'Already a member:'} ${memberLabel(granted.member)} ${granted.added ? 'to' : 'of'} project "${printable(granted.project)}" in stage ${stage}.` +
          `\nOnly its members may call it now (others get 403 project_access_denied); running proxies see changes within their policy cache (5 s by default).`,
      );
    },
  },
  {
    path: 'projects revoke',
    summary: 'remove a member of a project (a project left with none is open to every signed caller again)',
    options: MEMBER,
    async run({ values, stage, json }) {
      const revoked = await admin.revokeMember({ staging: stage, ...memberOf(values) });
      print(json, { revoked }, () => `Removed ${memberLabel(revoked.member)} from project "${printable(revoked.project)}" in stage ${stage}.`);
    },
  },
  {
    path: 'projects ls',
    summary: 'list the projects open only to their members, with the members',
    options: { project: { type: 'string', arg: 'NAME', help: 'only this project' } },
    async run({ values, stage, json }) {
      const project = str(values.project);
      const report = await admin.getMembers({ staging: stage, project });
      print(json, report, () => {
        if (!report.projects.length) {
          return project
            ? `Project "${printable(project)}" in stage ${stage} has no members: every signed caller may use it.`
            : `No project in stage ${stage} has members: every signed caller may use any project.`;
        }
        const rows = report.projects.flatMap((p) => p.members.map((m) => [p.project, m]));
        return `Projects with members in stage ${stage} (a member NAME/* is everyone who comes through that role):\n` +
          formatTable(['PROJECT', 'MEMBER'], rows, ['left', 'left']) +
          (project ? '' : '\nProjects not listed are open to every signed caller.');
      });
    },
  },
  {
    path: 'cache flush',
    summary: 'empty the stage\'s response cache',
    async run({ stage, json }) {
      await admin.flushCache({ staging: stage });
      print(json, { flushed: true, stage }, () => `Flushed the response cache of stage ${stage}.`);
    },
  },
  {
    path: 'outputs',
    summary: 'show what the SDK uses for the stage: proxy URL, region, admin function, and where they came from',
    async run({ stage, json }) {
      const target = resolveTarget(stage);
      print(json, target, () =>
        formatTable(['OUTPUT', 'VALUE'], Object.entries(target).map(([k, v]) => [k, String(v)])),
      );
    },
  },
  {
    path: 'url',
    summary: 'print the stage\'s proxy URL',
    async run({ stage, json }) {
      const target = resolveTarget(stage);
      print(json, { stage, proxyUrl: target.proxyUrl, baseURL: target.baseURL }, () => target.proxyUrl);
    },
  },
  {
    path: 'doctor',
    summary: 'check a stage before pulumi up (settings, secrets, credentials, Elastic IP and Lambda concurrency headroom) and after it (the proxy answers a signed request; with --call, it streams)',
    options: {
      dir: { type: 'string', arg: 'DIR', help: 'the folder of the Pulumi program, with Pulumi.<stage>.yaml (default: the current folder)' },
      outputs: { type: 'string', arg: 'FILE', help: 'the stage\'s outputs: pulumi stack output --json > FILE, or the local stack\'s outputs.json (default: found as the SDK finds them)' },
      call: { type: 'string', arg: 'PROJECT', help: 'also stream one gpt-4o-mini chat completion (at most 20 tokens, a fraction of a cent) billed to PROJECT' },
    },
    async run({ values, stage, json }) {
      const dir = str(values.dir);
      if (dir !== undefined && dir.trim() === '') throw new UsageError('--dir must not be empty: leave it out for the current folder');
      const outputs = str(values.outputs);
      if (outputs !== undefined) {
        if (outputs.trim() === '') throw new UsageError('--outputs must name a file');
        // Found as the SDK finds them, from this file: the admin calls of --call read it too.
        process.env.OPENAI_WRAPI_OUTPUTS = resolve(outputs);
      }
      const call = values.call === undefined ? undefined : projectFlag({ project: values.call }, 'call');
      const { runDoctor, formatReport } = await import('./doctor.ts');
      const report = await runDoctor({ stage, dir, outputsGiven: outputs !== undefined, call });
      print(json, report, () => formatReport(report));
      return report.summary.fail ? 1 : 0;
    },
  },
  {
    path: 'local',
    summary: 'start the local stack (same as npm start), until Ctrl-C',
    options: {
      home: HOME,
      port: { type: 'string', arg: 'PORT', help: 'port on 127.0.0.1 (default $PORT or 8787)' },
      demo: { type: 'boolean', help: 'answer every call from a simulated OpenAI: no key needed, nothing billed (also OPENAI_WRAPI_DEMO=1)' },
    },
    async run({ values, json }) {
      if (values.port !== undefined && !/^\d{1,5}$/.test(String(values.port))) throw new UsageError(`--port must be a port number (got "${printable(String(values.port))}")`);
      const missing = ['better-sqlite3', 'lru-cache', 'gpt-tokenizer'].filter((name) => !resolvable(name));
      if (missing.length) {
        throw new WrapiError(
          `The local stack needs packages an SDK install leaves out: npm install ${missing.map((m) => LOCAL_DEPS[m]).join(' ')}`,
        );
      }
      process.env.OPENAI_WRAPI_HOME = resolve(str(values.home) ?? process.env.OPENAI_WRAPI_HOME ?? '.openai-wrapi');
      if (values.port !== undefined) process.env.PORT = String(values.port);
      const { runLocalStack } = await import('../runtime/local/run.ts');
      await runLocalStack({ json, ...(values.demo === true ? { demo: true } : {}) }); // else OPENAI_WRAPI_DEMO decides
      return -1; // runs until stopped
    },
  },
  {
    path: 'local users add',
    args: ['NAME'],
    summary: 'add a user (an access key) to the local stack\'s credentials file',
    options: { admin: { type: 'boolean', help: 'may call the admin functions' }, home: HOME },
    async run({ values, args, json }) {
      const home = resolve(str(values.home) ?? process.env.OPENAI_WRAPI_HOME ?? '.openai-wrapi');
      const { addUser, userNameProblem } = await import('../runtime/local/credentials.ts');
      const problem = userNameProblem(args[0]);
      if (problem) throw new UsageError(`NAME "${printable(args[0])}" is not a user name: ${problem}`);
      const user = await addUser(home, args[0], values.admin === true);
      print(json, { name: user.name, accessKeyId: user.accessKeyId, admin: user.admin, credentialsFile: `${home}/credentials` }, () =>
        `Added ${user.admin ? 'admin ' : ''}user "${printable(user.name)}" (access key ${user.accessKeyId}) to ${home}/credentials.\n` +
        `Use it with: AWS_SHARED_CREDENTIALS_FILE=${home}/credentials AWS_PROFILE=${user.name}`,
      );
    },
  },
  {
    path: 'dashboard',
    summary: 'serve the web dashboard (usage, limits, savings) on 127.0.0.1, until Ctrl-C',
    options: {
      port: { type: 'string', arg: 'PORT', help: 'port on 127.0.0.1 (default 8788, or any free one if taken; 0: any)' },
      open: { type: 'boolean', help: 'also open it in the default browser' },
    },
    async run({ values, stage, json }) {
      if (values.port !== undefined && !/^\d{1,5}$/.test(String(values.port))) throw new UsageError(`--port must be a port number (got "${printable(String(values.port))}")`);
      const { startDashboardServer } = await import('./dashboard/server.ts');
      const server = await startDashboardServer({ stage, ...(values.port !== undefined ? { port: Number(values.port) } : {}) });
      // Handlers before the first line: a signal that finds none kills the process outright.
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      print(json, { url: server.url, stage }, () =>
        `openai-wrapi dashboard on ${server.url}\n` +
        `  It reads each stage through its admin function with your AWS credentials; the page itself holds none.\n` +
        '  The link carries a secret token for this run: keep it to yourself. Ctrl-C to stop.',
      );
      if (values.open) openInBrowser(server.url);
      return -1; // serves until stopped
    },
  },
];

/** Best effort: a machine without a desktop still has the link printed above. */
function openInBrowser(url: string): void {
  const [cmd, ...args] = process.platform === 'darwin' ? ['open', url] : process.platform === 'win32' ? ['cmd', '/c', 'start', '""', url] : ['xdg-open', url];
  import('node:child_process')
    .then(({ spawn }) => spawn(cmd, args, { stdio: 'ignore', detached: true }).on('error', () => undefined).unref())
    .catch(() => undefined);
}

const LOCAL_DEPS: Record<string, string> = { 'better-sqlite3': 'better-sqlite3@12', 'lru-cache': 'lru-cache@11', 'gpt-tokenizer': 'gpt-tokenizer@4' };

function resolvable(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

function usageText(r: admin.UsageReport): string {
  const title = `Usage in stage ${r.stage}, ${r.month}, by ${r.by}:`;
  if (!r.rows.length) return `${title} no calls.`;
  const money = (g: admin.UsageTotals) => [count(g.requests), count(g.errors), count(g.inputTokens), count(g.cachedTokens), count(g.outputTokens), usd(g.spend), count(g.cacheHits), usd(g.saved)];
  const rows = [...r.groups.map((g) => [g.key, ...money(g)]), ['TOTAL', ...money(r.totals)]];
  const head = [r.by.toUpperCase(), 'REQUESTS', 'ERRORS', 'INPUT', 'CACHED', 'OUTPUT', 'SPEND', 'CACHE HITS', 'SAVED'];
  let text = `${title}\n${formatTable(head, rows, ['left', ...Array(8).fill('right')])}`;
  const estimated = r.totals.estimated;
  if (estimated) text += `\n(${estimated} call${estimated === 1 ? '' : 's'} billed by a conservative estimate: OpenAI's usage could never be known)`;
  if (r.totals.errors) text += `\n(errors: calls OpenAI answered with an error or that failed on the way; they cost nothing)`;
  if (r.days?.length) {
    const days = r.days.map((d) => [d.day ?? '', d.project, d.user, d.model, count(d.requests), usd(d.spend)]);
    text += `\n\nPer day:\n${formatTable(['DAY', 'PROJECT', 'USER', 'MODEL', 'REQUESTS', 'SPEND'], days, ['left', 'left', 'left', 'left', 'right', 'right'])}`;
  }
  return text;
}

/** Text output escapes names where it builds them (formatTable, printable); JSON is escaped whole. */
function print(json: boolean, data: unknown, text: () => string): void {
  console.log(json ? safeJson(data) : text());
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function required(values: Values, name: string): string {
  const v = str(values[name]);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** `--long-context-*`: the threshold, input and output rates go together (a threshold alone prices nothing). */
function longContextFlags(values: Values): { longContext?: admin.LongContextDto } {
  const names = ['long-context-threshold', 'long-context-input', 'long-context-cached-input', 'long-context-output'];
  if (names.every((n) => values[n] === undefined)) return {};
  const threshold = str(values['long-context-threshold']);
  if (threshold === undefined || !/^\d+$/.test(threshold) || Number(threshold) < 1) {
    throw new UsageError(`--long-context-threshold must be a whole number of input tokens, e.g. 272000 (got "${printable(threshold ?? '')}")`);
  }
  const cached = values['long-context-cached-input'];
  return {
    longContext: {
      thresholdInputTokens: Number(threshold),
      input: amount(values['long-context-input'], 'long-context-input'),
      output: amount(values['long-context-output'], 'long-context-output'),
      ...(cached !== undefined ? { cachedInput: amount(cached, 'long-context-cached-input') } : {}),
    },
  };
}

function audioFlags(values: Values): { audio?: { input?: number; cachedInput?: number; output?: number } } {
  const flags = { input: 'audio-input', cachedInput: 'audio-cached-input', output: 'audio-output' };
  const set = Object.entries(flags).filter(([, flag]) => values[flag] !== undefined);
  return set.length ? { audio: Object.fromEntries(set.map(([rate, flag]) => [rate, amount(values[flag], flag)])) } : {};
}

/** Rates an override leaves out keep the table's: say so, since it is not what "set" suggests. */
function keptNote(kinds: (string | false)[]): string {
  const kept = kinds.filter(Boolean).join(' and ');
  return kept ? `\n${kept[0].toUpperCase()}${kept.slice(1)} rates not set here come from the shipped table for this model, if any (cache-write and long-context ones raised as far as the text rates are).` : '';
}

/** `$5 input, $0.5 cached, $22.5 output` for the rates that are set. */
function rates(r: { input?: number | null; cachedInput?: number | null; output?: number | null }): string {
  const parts = (['input', 'cachedInput', 'output'] as const)
    .filter((k) => r[k] != null)
    .map((k) => `$${price(r[k])} ${k === 'cachedInput' ? 'cached input' : k}`);
  return parts.join(', ');
}

const KIND_TEXT: Record<LimitKind, string> = { month: 'monthly USD', day: 'daily USD', rpm: 'requests-per-minute', tpm: 'tokens-per-minute' };

function periodFlag(value: unknown): 'month' | 'day' | undefined {
  if (value === undefined) return undefined;
  if (value === 'month' || value === 'day') return value;
  throw new UsageError(`--period must be month or day (got "${printable(String(value))}")`);
}

function monthFlag(value: unknown): string | undefined {
  const month = str(value);
  if (month !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) throw new UsageError(`--month must look like 2026-11 (got "${printable(month)}")`);
  return month;
}

/**
 * `--alerts 50,80,100` or `none`: whole percents 1-100, at most 10 (the admin function's rule, so a
 * typo is bad usage here rather than a refusal). Empty is a script's unset variable, not "none".
 */
function alertsFlag(value: unknown): number[] {
  const text = String(value).trim();
  if (text === 'none') return [];
  const parts = text.split(',').map((p) => p.trim());
  const percents = [...new Set(parts.map(Number))].sort((a, b) => a - b);
  if (!parts.every((p) => /^\d{1,3}$/.test(p)) || percents.some((n) => n < 1 || n > 100)) {
    throw new UsageError(`--alerts must be "none" or whole percents from 1 to 100, comma separated, e.g. 50,80,100 (got "${printable(String(value))}")`);
  }
  if (percents.length > 10) throw new UsageError(`--alerts takes at most 10 thresholds (got ${percents.length})`);
  return percents;
}

/** `80,100%`; `month 80,100% · day 90%` when the scope has both USD limits; `none`. */
function alertsCell(l: LimitStatus): string {
  const text = (alerts: number[] | undefined) => (!alerts ? '-' : alerts.length ? `${alerts.join(',')}%` : 'none');
  if (l.limit !== undefined && l.dailyLimit !== undefined) return `month ${text(l.alerts)} · day ${text(l.dailyAlerts)}`;
  if (l.dailyLimit !== undefined) return `day ${text(l.dailyAlerts)}`;
  return l.limit !== undefined ? text(l.alerts) : '';
}

function wholeNumber(value: unknown, name: string): number {
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim()) || Number(value) > 1_000_000_000) {
    throw new UsageError(`--${name} must be a whole number from 0 to 1000000000 (got "${printable(String(value))}")`);
  }
  return Number(value);
}

/** `$10.00 per month, $2.00 per day, 60 requests and 100,000 tokens per minute`: the limits a set returned. */
function limitsText(l: LimitDto): string {
  const parts: string[] = [];
  const alerts = (a: number[] | undefined) => (a === undefined ? '' : a.length ? ` (alerts at ${a.join(', ')}%)` : ' (no alerts)');
  if (l.limit !== undefined) parts.push(`${usd(l.limit)} per month${alerts(l.alerts)}`);
  if (l.dailyLimit !== undefined) parts.push(`${usd(l.dailyLimit)} per day (UTC)${alerts(l.dailyAlerts)}`);
  if (l.rpm !== undefined) parts.push(`${count(l.rpm)} requests per minute`);
  if (l.tpm !== undefined) parts.push(`${count(l.tpm)} tokens per minute`);
  return parts.join(', ');
}

function amount(value: unknown, name: string): number {
  if (value === undefined) throw new UsageError(`--${name} is required`);
  const n = Number(value);
  // Decimal only: Number() also reads "0x10" as 16 and "1e3" as 1000.
  if (typeof value !== 'string' || !/^\d+(\.\d+)?$/.test(value.trim())) {
    throw new UsageError(`--${name} must be a number of USD, e.g. 10 or 2.5 (got "${printable(String(value))}")`);
  }
  // The admin function refuses these too, but that is a refusal (exit 1), not bad usage.
  if (!isUsdAmount(n)) {
    throw new UsageError(`--${name} must be 0 or from ${MIN_USD} to ${MAX_USD} USD (got "${printable(value)}")`);
  }
  return n;
}

/** `--user ""` (a script's unset variable) is a mistake, not "the whole project": it would replace that limit. */
function scopeOf(values: Values): { project: string; user?: string; model?: string } {
  const selector = (name: 'user' | 'model') => {
    const v = str(values[name]);
    if (v === undefined) return {};
    if (v.trim() === '') throw new UsageError(`--${name} must not be empty: leave it out to mean the whole project`);
    return { [name]: v };
  };
  return { project: projectFlag(values), ...selector('user'), ...selector('model') };
}

/** A project name the proxy could never bill (e.g. with "#") is bad usage, with the rule it broke. */
function projectFlag(values: Values, flag = 'project'): string {
  const project = required({ [flag]: values.project }, flag);
  try {
    return checkProject(project, `--${flag}`);
  } catch {
    throw new UsageError(`--${flag} must be ${PROJECT_RULE} (got "${printable(project)}")`);
  }
}

/** `--user` or `--role`, exactly one, not empty. */
function memberOf(values: Values): { project: string; user?: string; role?: string } {
  const user = str(values.user);
  const role = str(values.role);
  if ((user === undefined) === (role === undefined)) throw new UsageError('give exactly one of --user NAME or --role ROLE');
  const [flag, value] = user !== undefined ? ['user', user] : ['role', role!];
  if (value.trim() === '') throw new UsageError(`--${flag} must not be empty`);
  return { project: projectFlag(values), [flag]: value };
}

const memberLabel = (member: string) =>
  member.endsWith('/*') ? `role "${printable(member.slice(0, -2))}" (everyone who comes through it)` : `user "${printable(member)}"`;

function describe(s: { project: string; user?: string; model?: string }): string {
  const q = (name: string) => `"${printable(name)}"`;
  return [`project ${q(s.project)}`, s.user && s.user !== '*' ? `user ${q(s.user)}` : '', s.model && s.model !== '*' ? `model ${q(s.model)}` : '']
    .filter(Boolean).join(', ');
}
