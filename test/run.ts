// `npm test`: type-checks the whole project (the Pulumi program's only validation here is its types)
// and runs every test/*.test.ts in its own process (uvu under tsx), then ends with the plain summary
// line CI reads: "N passed, N failed".
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('.', import.meta.url).pathname;
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

interface Result { file: string; passed: number; failed: number; skipped?: number; code: number | null; output: string; seconds?: number }

function runFile(file: string): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(dir, file)], {
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => {
      const total = sumOf(output, 'Total');
      const passed = sumOf(output, 'Passed');
      const skipped = sumOf(output, 'Skipped');
      const failed = Math.max(total - passed - skipped, 0) || (code === 0 ? 0 : 1);
      resolve({ file, passed, failed, skipped, code, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** uvu prints "Total: N" / "Passed: N" per suite run; a file may run several suites. */
function sumOf(output: string, label: string): number {
  let n = 0;
  for (const m of output.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))) n += Number(m[1]);
  return n;
}

/** `tsc --noEmit` over the project, counted as one test. */
function typecheck(): Promise<Result> {
  return new Promise((resolve) => {
    const tsc = join(dir, '..', 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', join(dir, '..')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ file: 'tsc --noEmit', passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, code, output }));
  });
}

let passed = 0;
let failed = 0;
let skipped = 0;
const started = Date.now();
const queue = [...files];
const checked = only.length === 0 ? typecheck() : undefined;
const workers = Array.from({ length: Number(process.env.TEST_JOBS ?? 2) }, async () => {
  for (let file = queue.shift(); file; file = queue.shift()) {
    const r = await runFile(file);
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped ?? 0;
    const ok = r.failed === 0 && r.code === 0;
    const skips = r.skipped ? `, ${r.skipped} skipped` : '';
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${file}  (${r.passed} passed, ${r.failed} failed${skips}, ${r.seconds!.toFixed(1)} s)`);
    // Why a file skipped: the helper's one line per absent program.
    for (const line of r.output.split('\n')) if (line.startsWith('skip: ')) console.log(`     ${line}`);
    if (!ok || process.env.TEST_VERBOSE) console.log(r.output.replace(/^/gm, '    '));
  }
});
await Promise.all(workers);
if (checked) {
  const r = await checked;
  passed += r.passed;
  failed += r.failed;
  console.log(`${r.failed === 0 ? 'ok  ' : 'FAIL'} ${r.file}`);
  if (r.failed) console.log(r.output.replace(/^/gm, '    '));
}
console.log(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
