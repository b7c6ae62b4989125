// `npm pack` of this repository for tests that install the package for real. Packing rebuilds dist/
// (prepack), so test files running in parallel take turns: a lock directory serialises them.
import { execFile } from 'node:child_process';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
export const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

export interface Packed {
  tarball: string;
  files: string[];
}

/**
 * Takes dist/ for this test file alone (packing rebuilds it; the quick-start test runs it): waits
 * while another file holds it. Returns the release.
 */
export async function lockDist(): Promise<() => Promise<void>> {
  const lock = join(root, 'tmp', 'pack.lock');
  await mkdir(join(root, 'tmp'), { recursive: true });
  for (let waited = 0; ; waited += 200) {
    try {
      await mkdir(lock);
      return () => rmdir(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || waited > 300_000) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Packs into `dest`; waits while another test file holds dist/. */
export async function packInto(dest: string): Promise<Packed> {
  const release = await lockDist();
  try {
    const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', dest], { cwd: root, maxBuffer: 1 << 24 });
    const [info] = JSON.parse(stdout);
    return { tarball: join(dest, info.filename), files: info.files.map((f: { path: string }) => f.path) };
  } finally {
    await release();
  }
}
