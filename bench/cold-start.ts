// Cold start of the proxy Lambda: what a fresh instance parses before its first call, and how long
// importing it takes, against a baseline measured in the same run.
// Run: npx tsx bench/cold-start.ts   (BENCH_COLD_ROUNDS=N fresh processes per variant, default 20)
//
// The archives are the ones the Pulumi program deploys (run under the test mocks), unpacked as Lambda
// unpacks them. Each import is timed in its own fresh, plain `node` process, variants interleaved:
// - split: the deployed layout, the entry and the chunks it imports statically (the tokenizer
//   is a chunk of its own, loaded on the first estimate);
// - inlined: the same files bundled back into one module, dynamic imports inlined as lazily
//   evaluated code, which is how the proxy shipped before: the tokenizer's text is parsed at import;
// - trivial: an empty module, the floor of the measurement.
// The first estimate (load the tokenizer, count a sentence) is timed too, with the longest the
// event loop was held meanwhile (the largest gap of a 1 ms ticker).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { BASE_CONFIG, runProgram } from '../test/helpers/pulumi-program.ts';

const ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 20);
/** Issue 11's targets, on this machine. */
const TARGET_HOT_PATH_MB = 0.6;
const TARGET_IMPORT_MS = 100;

type Files = Record<string, string>;
const MB = (bytes: number) => (bytes / 1e6).toFixed(2);
const sizeOf = (files: Files, paths = Object.keys(files)) => paths.reduce((n, p) => n + Buffer.byteLength(files[p]), 0);

/** The deployment packages the program builds: archive path → text, per function. */
async function deployedArchives(): Promise<Record<'proxy' | 'admin', Files>> {
  const run = await runProgram({ ...BASE_CONFIG, useElastiCache: false });
  const out = {} as Record<'proxy' | 'admin', Files>;
  for (const name of ['proxy', 'admin'] as const) {
    const assets: Record<string, { text: Promise<string> | string }> = await run.one('aws:lambda/function:Function', `-${name}`).inputs.code.assets;
    out[name] = {};
    for (const [path, asset] of Object.entries(assets)) out[name][path] = await asset.text;
  }
  return out;
}

function unpack(dir: string, files: Files): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/**
 * The split archive bundled back into one module (the layout before splitting), with a way to run its
 * lazily evaluated tokenizer. Returns its path and, from the same parse, the split layout's hot path:
 * the archive files reachable from the entry through static imports.
 */
async function inline(splitDir: string, tokenizerChunk: string, outFile: string): Promise<{ hotPath: string[] }> {
  const entry = join(splitDir, 'inlined-entry.mjs');
  writeFileSync(entry, `export * from './proxy.mjs';\nexport const loadTokenizer = () => import('./${tokenizerChunk}');\n`);
  const result = await esbuild.build({
    absWorkingDir: splitDir,
    entryPoints: [entry],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'error',
  });
  rmSync(entry);
  const hotPath = new Set<string>();
  const visit = (path: string) => {
    if (hotPath.has(path)) return;
    hotPath.add(path);
    for (const i of result.metafile.inputs[path].imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit('proxy.mjs');
  return { hotPath: [...hotPath] };
}

/** Runs in each fresh process: the Lambda runtime's global, then the timed import, then the first estimate. */
const PROBE = `
globalThis.awslambda = { streamifyResponse: (h) => h, HttpResponseStream: { from: (s) => s } };
const [module, chunk] = process.argv.slice(1);
const t0 = performance.now();
const m = await import(module);
const importMs = performance.now() - t0;
let estimate;
if (chunk) {
  let last = performance.now(), stall = 0;
  const ticker = setInterval(() => { const now = performance.now(); stall = Math.max(stall, now - last); last = now; }, 1);
  await new Promise((r) => setTimeout(r, 5));
  const t1 = performance.now(); last = t1;
  const tokenizer = chunk === 'inlined' ? await m.loadTokenizer() : await import(chunk);
  if (!(tokenizer.countTokens('How long does the first estimate take?') > 0)) throw new Error('no count');
  const ms = performance.now() - t1;
  stall = Math.max(stall, performance.now() - last);
  clearInterval(ticker);
  estimate = { ms, stall };
}
console.log(JSON.stringify({ importMs, estimate }));
`;

interface Sample { importMs: number; estimate?: { ms: number; stall: number } }
const probe = async (module: string, chunk = ''): Promise<Sample> =>
  JSON.parse((await promisify(execFile)(process.execPath, ['--input-type=module', '-e', PROBE, module, chunk])).stdout);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'openai-wrapi-cold-'));
try {
  const archives = await deployedArchives();
  const proxy = archives.proxy;
  const tokenizer = Object.keys(proxy).find((p) => /^chunks\/o200k-tokenizer-/.test(p))!;
  const splitDir = join(work, 'split');
  unpack(splitDir, proxy);
  const inlinedFile = join(work, 'inlined', 'proxy.mjs');
  const { hotPath } = await inline(splitDir, tokenizer, inlinedFile);
  const trivial = join(work, 'trivial.mjs');
  writeFileSync(trivial, 'export const handler = () => {};\n');

  const variants = {
    trivial: () => probe(pathToFileURL(trivial).href),
    inlined: () => probe(pathToFileURL(inlinedFile).href, 'inlined'),
    split: () => probe(pathToFileURL(join(splitDir, 'proxy.mjs')).href, pathToFileURL(join(splitDir, tokenizer)).href),
  };
  type Name = keyof typeof variants;
  const samples: Record<Name, Sample[]> = { trivial: [], inlined: [], split: [] };
  const names = Object.keys(variants) as Name[];
  await variants.split(); // warm the file cache
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so that no variant always runs right after another.
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length];
      samples[name].push(await variants[name]());
    }
  }

  const hotBytes = sizeOf(proxy, hotPath);
  console.log(`proxy archive: ${Object.keys(proxy).length} files, ${MB(sizeOf(proxy))} MB; tokenizer chunk ${MB(sizeOf(proxy, [tokenizer]))} MB`);
  console.log(`proxy hot path (proxy.mjs + ${hotPath.length - 1} chunks it imports statically): ${MB(hotBytes)} MB` +
    `   target ≤ ${TARGET_HOT_PATH_MB} MB: ${hotBytes <= TARGET_HOT_PATH_MB * 1e6 ? 'PASS' : 'FAIL'}`);
  console.log(`inlined baseline (one module, as before): ${MB(Buffer.byteLength(readFileSync(inlinedFile, 'utf8')))} MB`);
  console.log(`admin archive: ${Object.keys(archives.admin).length} files, ${MB(sizeOf(archives.admin))} MB`);
  console.log(`\nimport in a fresh node ${process.version} process, ${ROUNDS} rounds (median / min ms):`);
  const importMs = (name: Name) => samples[name].map((s) => s.importMs);
  for (const name of names) {
    console.log(`  ${name.padEnd(8)} ${median(importMs(name)).toFixed(1).padStart(7)} ${Math.min(...importMs(name)).toFixed(1).padStart(7)}`);
  }
  const split = median(importMs('split'));
  const inlined = median(importMs('inlined'));
  console.log(`  split / inlined: ${(split / inlined).toFixed(2)}   split − trivial: ${(split - median(importMs('trivial'))).toFixed(1)} ms` +
    `   target ≤ ${TARGET_IMPORT_MS} ms: ${split <= TARGET_IMPORT_MS ? 'PASS' : 'FAIL'}`);
  console.log('\nfirst estimate (load the tokenizer, count one sentence), median / min ms: time, longest event-loop stall');
  for (const name of ['inlined', 'split'] as const) {
    const e = samples[name].map((s) => s.estimate!);
    const cols = [e.map((x) => x.ms), e.map((x) => x.stall)].flatMap((xs) => [median(xs), Math.min(...xs)]);
    console.log(`  ${name.padEnd(8)} ${cols.map((x) => x.toFixed(1).padStart(7)).join(' ')}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
