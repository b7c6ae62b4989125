// The `openai-wrapi` command: admin tasks (limits, usage, prices, cache), what the SDK resolves for a
// stage (outputs, url), and the local stack. Exit codes: 0 ok, 1 refused or failed, 2 bad usage.
// Errors are one line on stderr (JSON with --json).
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { COMMANDS, GLOBAL, UsageError, type Command, type OptionSpec, type Values } from './cli-commands.ts';
import { WrapiAdminError } from './errors.ts';
import { closest, printable } from './cli-format.ts';
import { checkStaging, getSettings } from './settings.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

// ------------------------------------------------------------------ help and argument parsing

function version(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

const optionLine = (name: string, o: OptionSpec) => `  ${`${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`.padEnd(30)} ${o.help}`;

function commandHelp(c: Command): string {
  const opts = Object.entries({ ...c.options, ...GLOBAL }).map(([n, o]) => optionLine(n, o));
  const subs = COMMANDS.filter((o) => o.path.startsWith(`${c.path} `)).map((o) => `  openai-wrapi ${o.path}${o.args ? ` ${o.args.join(' ')}` : ''}  ${o.summary}`);
  return `Usage: openai-wrapi ${c.path}${c.args ? ` ${c.args.join(' ')}` : ''} [options]\n\n${c.summary}\n\nOptions:\n${opts.join('\n')}` +
    (subs.length ? `\n\nSee also:\n${subs.join('\n')}` : '');
}

function overview(prefix = ''): string {
  const shown = COMMANDS.filter((c) => c.path === prefix || c.path.startsWith(prefix ? `${prefix} ` : ''));
  const lines = shown.map((c) => `  ${`${c.path}${c.args ? ` ${c.args.join(' ')}` : ''}`.padEnd(22)} ${c.summary}`);
  return (
    `Usage: openai-wrapi ${prefix ? `${prefix} ` : ''}<command> [options]\n\nCommands:\n${lines.join('\n')}\n\n` +
    `Options everywhere:\n${Object.entries(GLOBAL).map(([n, o]) => optionLine(n, o)).join('\n')}\n\n` +
    'Run openai-wrapi <command> --help for its options. Exit codes: 0 ok, 1 refused or failed, 2 bad usage.'
  );
}

const toParseArgs = (specs: Record<string, OptionSpec>) =>
  Object.fromEntries(Object.entries(specs).map(([n, o]) => [n, { type: o.type, ...(o.short ? { short: o.short } : {}) }]));

export async function main(argv: string[]): Promise<number> {
  const everything = Object.assign({}, GLOBAL, ...COMMANDS.map((c) => c.options ?? {})) as Record<string, OptionSpec>;
  const loose = parseArgs({ args: argv, options: toParseArgs(everything), strict: false, allowPositionals: true });
  const words = loose.positionals;
  if (words.length === 0) {
    if (loose.values.version) return console.log(version()), 0;
    if (loose.values.help) return console.log(overview()), 0;
    throw new UsageError('no command given (see openai-wrapi --help)');
  }
  const command = [...COMMANDS].sort((a, b) => b.path.length - a.path.length).find((c) => {
    const path = c.path.split(' ');
    return path.every((w, i) => words[i] === w);
  });
  const group = COMMANDS.some((c) => c.path.startsWith(`${words[0]} `)) ? words[0] : '';
  const longer = words.length > (command?.path.split(' ').length ?? 0);
  const partOfAnother = command && longer && COMMANDS.some((c) => c.path.startsWith(`${command.path} ${words[command.path.split(' ').length]}`));
  if (!command || (partOfAnother && !command.args)) {
    if (group && loose.values.help) return console.log(overview(group)), 0;
    const subs = COMMANDS.filter((c) => c.path.startsWith(`${group} `)).map((c) => c.path.slice(group.length + 1));
    if (group && words.length === 1) throw new UsageError(`${group} needs a subcommand: ${subs.join(', ')} (see openai-wrapi ${group} --help)`);
    throw new UsageError(`unknown command "${printable(words.join(' '))}"${didYouMean(words)} (see openai-wrapi ${group ? `${group} ` : ''}--help)`);
  }
  if (loose.values.help) return console.log(commandHelp(command)), 0;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: toParseArgs({ ...command.options, ...GLOBAL }), strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${parseProblem(err, Object.keys({ ...command.options, ...GLOBAL }))} (see openai-wrapi ${command.path} --help)`);
  }
  const args = parsed.positionals.slice(command.path.split(' ').length);
  if (args.length !== (command.args?.length ?? 0)) {
    throw new UsageError(`${command.path} takes ${command.args?.length ? command.args.join(' ') : 'no arguments'} (see openai-wrapi ${command.path} --help)`);
  }
  const values = parsed.values as Values;
  let stage: string;
  try {
    stage = checkStaging(str(values.stage) ?? getSettings().staging, '--stage');
  } catch (err) {
    if (values.stage === undefined) throw err;
    throw new UsageError((err as Error).message);
  }
  const code = await command.run({ values, args, stage, json: values.json === true });
  return typeof code === 'number' ? code : 0;
}

/** ` — did you mean "limits ls"?` for a typo of a command (or of a group's first word), else nothing. */
function didYouMean(words: string[]): string {
  const guess = COMMANDS.map((c) => c.path).find((path) => closest(words.slice(0, path.split(' ').length).join(' '), [path]));
  return guess ? ` — did you mean "${guess}"?` : '';
}

/**
 * node:util parseArgs's errors, in this CLI's words: an option without its value (or followed by
 * another option, which parseArgs calls "ambiguous") says so; an unknown option gets a suggestion.
 */
function parseProblem(err: unknown, known: string[]): string {
  const message = err instanceof Error ? err.message : String(err);
  const option = /^Option '(?:-\w, )?(--[\w-]+)/.exec(message)?.[1];
  if (option && /argument missing/.test(message)) return `${option} needs a value`;
  if (option && /ambiguous/.test(message)) {
    return `${option} needs a value, and the next word starts with "-" (write ${option}=VALUE for a value that does)`;
  }
  const unknown = /^Unknown option '(--?[^']*)'/.exec(message)?.[1];
  if (unknown) {
    const guess = unknown.startsWith('--') ? closest(unknown.slice(2), known) : undefined;
    return `unknown option '${printable(unknown)}'${guess ? ` — did you mean --${guess}?` : ''}`;
  }
  return printable(message.split(/\.\s/)[0]);
}

function fail(err: unknown, json: boolean): number {
  const usage = err instanceof UsageError;
  const message = err instanceof Error ? err.message : String(err);
  if (json) {
    const e = err instanceof WrapiAdminError ? { code: err.code, type: err.type, param: err.param } : { code: usage ? 'usage' : err instanceof Error ? err.name : 'error' };
    console.error(JSON.stringify({ error: { message: message.replace(/\s+/g, ' ').trim(), ...e } }));
  } else {
    console.error(`openai-wrapi: ${message.replace(/\s+/g, ' ').trim()}`);
  }
  return usage ? 2 : 1;
}

// The AWS SDK's notice about future Node versions is not for the people reading this output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const argv = process.argv.slice(2);

// Output that could not be written (a full disk: ENOSPC) is a failure a script must see; a reader
// that went away (EPIPE, as in `| head`) is not.
let outputLost = false;
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE' || outputLost) return;
  outputLost = true;
  const lost = Object.assign(new Error(`could not write the output: ${err.message}`), { name: 'OutputError' });
  process.exitCode = fail(lost, argv.includes('--json'));
});

main(argv).then(
  (code) => {
    if (code >= 0 && !outputLost) process.exitCode = code;
  },
  (err) => {
    process.exitCode = fail(err, argv.includes('--json'));
  },
);
