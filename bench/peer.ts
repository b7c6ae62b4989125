/**
 * Another AI gateway run side by side with the stack in bench/proxy.ts (`npm run bench -- --peer
 * portkey`): installed on first use into bench/.peers/<name>/ (gitignored; its own package.json,
 * never the project's node_modules), started on loopback in its own process with the same probe
 * the stack has (bench/peer-probe.mjs), and pointed at the bench's fake upstream. `passthrough` is
 * no gateway but the floor under one: a bare node:http forwarder in this folder, nothing to install.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Child } from './child.ts';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
export const PEERS_DIR = path.join(BENCH, '.peers');

export interface PeerSpec {
  /** As printed in the table. */
  label: string;
  /** Exact versions: a peer's figures mean something only for the version measured. */
  dependencies: Record<string, string>;
  /** npm `overrides` of the peer's own dependencies. */
  overrides: Record<string, string>;
  /** The installed entry point, relative to the install folder; for a peer without dependencies, relative to bench/. */
  entry: string;
  /**
   * A gateway the stack's targets are set against (its "< Portkey's" verdicts). False for a floor:
   * its columns are information, and the peer-relative verdicts say so instead of judging.
   */
  judged: boolean;
  args: (port: number) => string[];
  /** Headers that make the peer forward an OpenAI chat call to `upstream` (a base URL ending in /v1). */
  headers: (upstream: string, apiKey: string) => Record<string, string>;
  /** The path a client posts chat completions to. */
  chatPath: string;
}

export const PEERS: Record<string, PeerSpec> = {
  portkey: {
    label: 'Portkey',
    dependencies: { '@portkey-ai/gateway': '1.15.2' },
    // A fresh install resolves a newer @hono/node-server, with which the gateway's streams break.
    overrides: { '@hono/node-server': '1.14.1' },
    entry: 'node_modules/@portkey-ai/gateway/build/start-server.js',
    // Port 0: the kernel picks a free one, which the probe reports. Headless: no log UI.
    args: (port) => [`--port=${port}`, '--headless'],
    // The OpenAI provider with a custom base URL; Portkey trusts loopback custom hosts by default.
    headers: (upstream, apiKey) => ({
      authorization: `Bearer ${apiKey}`,
      'x-portkey-provider': 'openai',
      'x-portkey-custom-host': upstream,
    }),
    chatPath: '/v1/chat/completions',
    judged: true,
  },
  passthrough: {
    label: 'Pass-through',
    dependencies: {},
    overrides: {},
    entry: 'passthrough.mjs',
    args: (port) => [String(port)],
    headers: (upstream, apiKey) => ({ authorization: `Bearer ${apiKey}`, 'x-passthrough-upstream': upstream }),
    chatPath: '/v1/chat/completions',
    judged: false,
  },
};

export interface BenchArgs {
  peer?: string;
}

/** `--peer <name>` (or `--peer=<name>`); throws a message fit for the terminal on anything else. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  let values: { peer?: string };
  try {
    ({ values } = parseArgs({ args: argv, options: { peer: { type: 'string' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new Error(`${(err as Error).message}. Usage: npm run bench [-- --peer ${Object.keys(PEERS).join('|')}]`);
  }
  const peer = values.peer?.toLowerCase();
  if (peer !== undefined && !Object.hasOwn(PEERS, peer)) {
    throw new Error(`unknown peer '${values.peer}': known peers are ${Object.keys(PEERS).join(', ')}`);
  }
  return { peer };
}

const installedVersion = (dir: string, pkg: string): string | undefined => {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
};

/** Installs the peer into bench/.peers/<name>/ unless the exact versions are already there; returns the folder. */
export function ensureInstalled(name: string, log: (msg: string) => void): string {
  const spec = PEERS[name];
  if (Object.keys(spec.dependencies).length === 0) return BENCH;
  const dir = path.join(PEERS_DIR, name);
  const pinned = { ...spec.dependencies, ...spec.overrides };
  if (Object.entries(pinned).every(([pkg, v]) => installedVersion(dir, pkg) === v) && existsSync(path.join(dir, spec.entry))) return dir;
  log(`installing ${Object.entries(spec.dependencies).map(([p, v]) => `${p}@${v}`).join(' ')} into ${path.relative(process.cwd(), dir)} (first use)`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    `${JSON.stringify({ name: `bench-peer-${name}`, private: true, dependencies: spec.dependencies, overrides: spec.overrides }, null, 2)}\n`,
  );
  // --ignore-scripts: the gateway's postinstall runs patch-package, whose patches are not published.
  try {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (err) {
    throw new Error(`npm install in ${dir} failed (${(err as Error).message.split('\n')[0]}); npm's own message is above`);
  }
  for (const [pkg, v] of Object.entries(pinned)) {
    const got = installedVersion(dir, pkg);
    if (got !== v) throw new Error(`${name}: installed ${pkg}@${got ?? 'nothing'}, expected ${v}`);
  }
  return dir;
}

export interface RunningPeer {
  label: string;
  /** See PeerSpec.judged. */
  judged: boolean;
  /** name@version of what runs. */
  package: string;
  child: Child;
  host: string;
  port: number;
  chatPath: string;
  headers: Record<string, string>;
}

/** Starts the installed peer on loopback, forwarding to `upstream` with `apiKey`. */
export async function startPeer(name: string, dir: string, upstream: string, apiKey: string): Promise<RunningPeer> {
  const spec = PEERS[name];
  const child = await Child.fork(name, {
    module: path.join(dir, spec.entry),
    args: spec.args(0),
    execArgv: ['--expose-gc', '--import', pathToFileURL(path.join(BENCH, 'peer-probe.mjs')).href],
    cwd: dir,
    stdout: 'ignore',
  });
  const url = new URL(child.ready.url);
  const pkg = Object.entries(spec.dependencies).map(([p, v]) => `${p}@${v}`).join(' ') || `bench/${spec.entry}`;
  return { label: spec.label, package: pkg, judged: spec.judged, child, host: url.hostname, port: Number(url.port), chatPath: spec.chatPath, headers: spec.headers(upstream, apiKey) };
}
