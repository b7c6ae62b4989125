// One-way dependencies (DESIGN.md "Layout"): the core knows nothing of Lambda, node:http, AWS or
// the SDK; adapters never import each other; the SDK reaches the runtime only to launch it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);

function files(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    return statSync(join(root, path)).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found = [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return found.map((m) => m[1] ?? m[2]);
}

const target = (file: string, spec: string) => (spec.startsWith('.') ? relative(root, resolve(root, file, '..', spec)) : spec);

test('runtime/core imports only runtime/core and runtime/data, and never reads process.env', () => {
  for (const file of files('runtime/core')) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      assert.ok(to.startsWith('runtime/core/') || to.startsWith('runtime/data/'), `${file} imports ${spec}`);
    }
    assert.not.match(readFileSync(join(root, file), 'utf8'), /process\.env/, `${file} reads process.env`);
  }
});

test('stores implement core ports without reaching into adapters', () => {
  for (const file of files('runtime/store')) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      assert.not.ok(/^runtime\/(lambda|local)\//.test(to), `${file} imports ${spec}`);
    }
  }
});

test('the Lambda adapter never imports the local stack, and the local stack never imports Lambda code', () => {
  for (const file of files('runtime/lambda')) for (const spec of imports(file)) assert.not.ok(target(file, spec).startsWith('runtime/local/'), `${file} → ${spec}`);
  for (const file of files('runtime/local')) for (const spec of imports(file)) assert.not.ok(target(file, spec).startsWith('runtime/lambda/'), `${file} → ${spec}`);
});

/** The zero-import modules others may load without loading runtime code: the wire protocol and the deploy contract. */
const CONTRACTS = ['runtime/core/protocol.ts', 'runtime/core/contract.ts'];

test('the wire protocol and the deploy contract import nothing', () => {
  for (const file of CONTRACTS) assert.equal(imports(file), [], file);
});

// And for the public URL's settings reader (pure core: no I/O, no environment of its own), so the
// program refuses `publicAccess` values exactly as the public function would.
test('index.ts reaches runtime/ only for the deploy contract and the public URL\'s settings (the functions\' code goes through the bundler)', () => {
  const reached = imports('index.ts').map((spec) => target('index.ts', spec)).filter((to) => to.startsWith('runtime/'));
  assert.equal(reached, ['runtime/core/contract.ts', 'runtime/core/public-access.ts']);
});

test('sdk/ reaches runtime/ only for the wire protocol, the deploy contract, and to launch or administer the local stack', () => {
  for (const file of files('sdk')) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      if (!to.startsWith('runtime/')) continue;
      assert.ok(CONTRACTS.includes(to) || to.startsWith('runtime/local/'), `${file} imports ${spec}`);
    }
  }
});

test('runtime/ reaches sdk/ only where the local stack mounts the dashboard, which stays free of the SDK', () => {
  for (const file of files('runtime')) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      if (!to.startsWith('sdk/')) continue;
      assert.ok(file.startsWith('runtime/local/') && to === 'sdk/dashboard/serve.ts', `${file} imports ${spec}`);
    }
  }
  const allowed = ['runtime/core/protocol.ts', 'sdk/dashboard/assets.ts'];
  for (const file of ['sdk/dashboard/serve.ts', 'sdk/dashboard/assets.ts']) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      assert.ok(to.startsWith('node:') || to === 'esbuild' || allowed.includes(to), `${file} imports ${spec}`);
    }
  }
});

test('the dashboard page runs in the browser: no Node built-ins, only its own files and the chart library', () => {
  for (const file of files('sdk/dashboard/page')) {
    for (const spec of imports(file)) {
      const to = target(file, spec);
      const ok = to.startsWith('sdk/dashboard/page/') || to === '@observablehq/plot' || to === 'sdk/cli-format.ts' || to === 'runtime/core/protocol.ts';
      assert.ok(ok, `${file} imports ${spec}`);
    }
  }
});

test.run();
