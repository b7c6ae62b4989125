// README's "Your first five minutes", run as written: the commands are read from the README's
// `console` blocks (`$ ` lines; the lines under each are its output), not copied here. The first
// command starts the stack in demo mode and keeps running; the others run in turn against it and
// must print what the README shows. Only what differs from machine to machine is normalised: the
// port (the test asks for a free one) and the month.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { childEnv } from './helpers/sdk.ts';
import { lockDist } from './helpers/pack.ts';
import { hasChromium, unless } from './helpers/binaries.ts';
import { launchChromium, settledState } from './helpers/browser.ts';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const SECTION = '### Your first five minutes';

interface Step { command: string; output: string[] }

/** The `console` blocks of the section, as commands with the output each one shows. */
async function quickStart(): Promise<Step[][]> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf(SECTION);
  assert.ok(start >= 0, `README has "${SECTION}"`);
  const end = readme.slice(start + SECTION.length).search(/\n#{2,3} /);
  const section = readme.slice(start, end < 0 ? undefined : start + SECTION.length + end);
  return [...section.matchAll(/```console\n([\s\S]*?)```/g)].map(([, body]) => {
    const steps: Step[] = [];
    for (const line of body.trimEnd().split('\n')) {
      if (line.startsWith('$ ')) steps.push({ command: line.slice(2), output: [] });
      else steps.at(-1)!.output.push(line);
    }
    return steps;
  });
}

const normalise = (line: string) => line.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT').replace(/\b\d{4}-\d{2}\b/g, 'YYYY-MM').trimEnd();

let home: string;
let stack: ChildProcess | undefined;
let releaseDist: (() => Promise<void>) | undefined;
/** The dashboard link the demo stack printed. */
let dashboardUrl: string | undefined;
test.before(async () => {
  home = await mkdtemp(join(tmpdir(), 'wrapi-quickstart-'));
  // `npx openai-wrapi` runs dist/ (built by `npm install`'s prepare): rebuild it, or a pull since then
  // would be tested with the old CLI; and hold it, so no other test file rebuilds it under our commands.
  releaseDist = await lockDist();
  await run('npm', ['run', 'build'], { cwd: root, timeout: 120_000 });
});
test.after(async () => {
  if (stack && stack.exitCode === null) {
    const exited = new Promise((resolve) => stack!.once('exit', resolve));
    process.kill(-stack.pid!, 'SIGTERM');
    await exited;
  }
  await rm(home, { recursive: true, force: true });
  await releaseDist?.();
});

test('the quick start\'s commands, run as the README writes them, print what it shows', async () => {
  const blocks = await quickStart();
  assert.is(blocks.length, 2, 'one block starts the stack, one uses it');
  // A fresh data folder and a free port: the README's commands themselves are unchanged.
  const env = childEnv({ OPENAI_WRAPI_HOME: home, PORT: '0', OPENAI_API_KEY: undefined, OPENAI_WRAPI_DEMO: undefined });

  const [[starter], steps] = blocks;
  assert.is(starter.command, 'npm start -- --demo');
  stack = spawn('bash', ['-c', starter.command], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const banner = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    let err = '';
    stack!.stderr!.on('data', (d) => (err += d));
    stack!.stdout!.on('data', (d) => {
      out += d;
      // npm's own "> openai-wrapi@… start" lines come first; the stack's banner ends with its stage lines.
      const lines = out.split('\n').filter((l) => l && !l.startsWith('> '));
      if (lines.some((l) => l.startsWith('  prod: '))) resolve(lines);
    });
    stack!.once('exit', (code) => reject(new Error(`the stack exited (${code}): ${err}`)));
  });
  assert.equal(banner.slice(0, starter.output.length).map(normalise), starter.output.map(normalise));
  dashboardUrl = banner.map((l) => /dashboard:\s+(\S+)/.exec(l)?.[1]).find(Boolean);

  for (const step of steps) {
    const { stdout } = await run('bash', ['-c', step.command], { cwd: root, env, timeout: 60_000 });
    assert.equal(stdout.trimEnd().split('\n').map(normalise), step.output.map(normalise), step.command);
  }
  // And the one call above is in the ledger: the answer came through the proxy, not around it.
  const { stdout } = await run('bash', ['-c', 'npx openai-wrapi usage --json'], { cwd: root, env, timeout: 60_000 });
  const usage = JSON.parse(stdout);
  assert.equal(usage.rows.map((r: { project: string; requests: number; outputTokens: number }) => [r.project, r.requests, r.outputTokens]), [['demo', 1, 22]]);
});

unless(hasChromium(), test)('the demo\'s dashboard says its figures come from a simulated OpenAI', async () => {
  assert.ok(dashboardUrl, 'the demo stack printed its dashboard link (the test above ran)');
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(dashboardUrl!);
    assert.is(await settledState(page), 'ready');
    const notice = page.locator('#notice');
    assert.ok(await notice.isVisible(), 'the notice is shown');
    assert.match(await notice.textContent() ?? '', /simulated OpenAI/);
    assert.match(await notice.textContent() ?? '', /Nothing was billed/);
  } finally {
    await browser.close();
  }
});

/** `openai-wrapi local --json` with these arguments: its first line, then stopped. */
async function started(args: string[], env: NodeJS.ProcessEnv): Promise<{ simulated?: boolean; stages: { upstream: string }[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'sdk/cli.ts'), 'local', '--json', '--port', '0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    return await new Promise((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]));
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

test('demo mode only when asked for: a key in the environment is never sent to the simulator, nor replaced by it', async () => {
  // A folder of its own: the quick start's stack still holds its ledger files.
  const own = join(home, 'demo-or-not');
  const env = childEnv({ OPENAI_WRAPI_HOME: own, OPENAI_API_KEY: 'sk-a-real-looking-key', OPENAI_WRAPI_DEMO: undefined });
  const real = await started([], env);
  assert.is(real.simulated, undefined);
  assert.equal(real.stages.map((s) => s.upstream), ['https://api.openai.com/v1', 'https://api.openai.com/v1']);
  for (const demo of [await started(['--demo'], env), await started([], { ...env, OPENAI_WRAPI_DEMO: '1' })]) {
    assert.is(demo.simulated, true);
    for (const s of demo.stages) assert.match(s.upstream, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  }
  const outputs = JSON.parse(await readFile(join(own, 'outputs.json'), 'utf8'));
  assert.is(outputs.dev.simulatedUpstream, true, 'outputs.json tells the SDK and CLI');
});

test.run();
