// Runtimes that tests install from the npm registry into the repository's .cache/ (gitignored),
// once per machine: a Node binary of another major (node-<platform>-<arch>), and Lambda's runtime
// interface client (aws-lambda-ric), whose install builds curl, aws-lambda-cpp and a native addon
// from the sources it ships (cmake, make, g++ and python3; no download besides the registry's).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { npm } from './pack.ts';

const run = promisify(execFile);
const CACHE = new URL('../../.cache/', import.meta.url).pathname;

/** The aws-lambda-ric major under test: 4 is what Lambda's Node 22 images run (it needs Node >= 22). */
export const RIC_MAJOR = '4';

export interface NodeBinary {
  name: string;
  bin: string;
  /** Its package folder: bin/node and include/node (the headers node-gyp builds against). */
  dir: string;
}

export interface LambdaRuntime {
  node: NodeBinary;
  /** The runtime interface client's entry point (what Lambda's bootstrap runs). */
  ric: string;
  ricVersion: string;
  /** Seconds this call spent installing: 0 when the cache already had it. */
  installSeconds: number;
}

/**
 * Runs `install` into `.cache/<name>` unless `ready` (a file it leaves) exists. Test files run in
 * parallel: a lock folder makes the second one wait for the first one's install.
 */
async function cached(
  name: string,
  ready: string,
  install: (dir: string) => Promise<void>,
  manifest: Record<string, unknown> = {},
): Promise<{ dir: string; seconds: number }> {
  const dir = join(CACHE, name);
  const lock = join(CACHE, `${name}.lock`);
  await mkdir(CACHE, { recursive: true });
  for (let waited = 0; ; waited += 500) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || waited > 900_000) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const started = Date.now();
  try {
    if (existsSync(join(dir, ready))) return { dir, seconds: 0 };
    await rm(dir, { recursive: true, force: true }); // a half-done install is started over
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `cache-${name}`, private: true, ...manifest }));
    await install(dir);
    if (!existsSync(join(dir, ready))) throw new Error(`installing ${name} left no ${ready}`);
    return { dir, seconds: (Date.now() - started) / 1000 };
  } finally {
    await rmdir(lock);
  }
}

const npmInstall = (dir: string, specs: string[], env: NodeJS.ProcessEnv = process.env) =>
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', ...specs], { cwd: dir, env, timeout: 900_000, maxBuffer: 1 << 26 });

/** A Node binary of another major, from the npm package that ships it (node-<platform>-<arch>). */
export async function installNode(major: string): Promise<NodeBinary> {
  const pkg = `node-${process.platform}-${process.arch}`;
  const { dir } = await cached(`node-${major}`, join('node_modules', pkg, 'bin', 'node'), (d) => npmInstall(d, [`${pkg}@${major}`]).then(() => {}));
  const home = join(dir, 'node_modules', pkg);
  const bin = join(home, 'bin', 'node');
  const { stdout } = await run(bin, ['--version']);
  if (!stdout.startsWith(`v${major}.`)) throw new Error(`${bin} is ${stdout.trim()}, not Node ${major}`);
  return { name: `node ${stdout.trim().slice(1)}`, bin, dir: home };
}

/**
 * Node 22 and aws-lambda-ric, built against that Node's own headers (npm_config_nodedir: node-gyp
 * downloads nothing) with that Node first on PATH (its engines field asks for >= 22).
 */
export async function installLambdaRuntime(): Promise<LambdaRuntime> {
  const node = await installNode('22');
  const addon = join('node_modules', 'aws-lambda-ric', 'rapid-client.node');
  const env = { ...process.env, PATH: `${join(node.dir, 'bin')}:${process.env.PATH}`, npm_config_nodedir: node.dir };
  // Its install scripts are the build: allowed by name, as npm's install-script policy asks.
  const { dir, seconds } = await cached(`aws-lambda-ric-${RIC_MAJOR}`, addon, (d) => npmInstall(d, [`aws-lambda-ric@${RIC_MAJOR}`], env).then(() => {}), {
    allowScripts: { 'aws-lambda-ric': true },
  });
  const home = join(dir, 'node_modules', 'aws-lambda-ric');
  const { version } = JSON.parse(await readFile(join(home, 'package.json'), 'utf8')) as { version: string };
  return { node, ric: join(home, 'index.mjs'), ricVersion: version, installSeconds: seconds };
}

// `npx tsx test/helpers/node-runtime.ts` installs ahead of `npm test` (.ci/run does), so that the
// compile does not share the cores with timing-sensitive tests.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { ricVersion, node, installSeconds } = await installLambdaRuntime();
  console.log(`aws-lambda-ric ${ricVersion} on ${node.name}: ${installSeconds ? `installed in ${installSeconds.toFixed(0)} s` : 'already in .cache/'}`);
}
