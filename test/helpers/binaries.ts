// Tests that need a system program (memcached, Chromium) are skipped where it is absent, with one
// line naming it and how to install it. CI sets WRAPI_REQUIRE_BINARIES=1: there, an absent program
// fails the file instead, so a green CI run always proves those tests ran.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Test } from 'uvu';

function available(name: string, present: boolean, install: string): boolean {
  if (present) return true;
  const why = `${name} not found (install it: ${install})`;
  if (process.env.WRAPI_REQUIRE_BINARIES === '1') throw new Error(`${why}; WRAPI_REQUIRE_BINARIES=1 makes this a failure`);
  console.log(`skip: ${why}`);
  return false;
}

export const hasMemcached = () =>
  available('memcached', spawnSync('sh', ['-c', 'command -v memcached'], { stdio: 'ignore' }).status === 0, 'apt-get install -y memcached');

export const hasChromium = () =>
  available('Chromium', existsSync(process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'), 'apt-get install -y chromium, or set CHROMIUM_PATH');

/** What installing aws-lambda-ric compiles with (curl, aws-lambda-cpp, the addon: test/helpers/node-runtime.ts). */
const BUILD_TOOLS = ['cmake', 'make', 'g++', 'python3', 'xz'];
export const hasBuildTools = () => {
  const absent = BUILD_TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
  return available(absent.join(', ') || 'build tools', absent.length === 0, 'apt-get install -y cmake make g++ python3 xz-utils');
};

/**
 * `test` when `ok`, else a stand-in whose cases are registered as skipped (uvu counts them) and
 * whose hooks never run, so a before-hook that would start the program is not called.
 */
export function unless<T>(ok: boolean, test: Test<T>): Test<T> {
  if (ok) return test;
  const skipped = ((name: string, fn: never) => test.skip(name, fn)) as unknown as Test<T>;
  const noop = () => {};
  const hook = Object.assign(noop, { each: noop });
  Object.assign(skipped, { skip: test.skip, only: test.only, before: hook, after: hook, run: () => test.run() });
  return skipped;
}
