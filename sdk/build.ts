// `npm run build`: the SDK package in dist/ — ESM (.mjs) and CommonJS (.cjs) builds of the SDK and
// of `register`, the CLI (ESM, with the local stack and the dashboard server as lazily loaded chunks),
// the dashboard page prebuilt in dist/dashboard/, and type declarations for both module systems.
// Dependencies stay external: the install brings them.
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { ASSET_FILES, buildDashboardAssets } from './dashboard/assets.ts';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');

/** Installed with the SDK (dependencies, peer) or only for the local stack (optional peers). */
const external = [
  'openai', '@aws-sdk/*', '@smithy/*',
  // Module hooks: import-in-the-middle's loader is a file Node resolves from the installed package.
  'require-in-the-middle', 'import-in-the-middle',
  'better-sqlite3', 'lru-cache', 'gpt-tokenizer', 'memjs',
  // Only the repository builds the dashboard page on the fly; the package reads dist/dashboard/.
  'esbuild',
];

const common: BuildOptions = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  external,
  logLevel: 'warning',
  legalComments: 'none',
};

// CommonJS has no import.meta: the code's few uses get the file URL of the bundle instead.
const cjs: BuildOptions = {
  ...common,
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  define: { 'import.meta.url': '__wrapi_import_meta_url' },
  banner: { js: "const __wrapi_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
};

export async function buildPackage(): Promise<void> {
  await rm(dist, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { index: 'sdk/index.ts', register: 'sdk/register.ts', cli: 'sdk/cli.ts' },
    format: 'esm',
    splitting: true,
    outdir: dist,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    define: { WRAPI_DASHBOARD_PREBUILT: 'true' },
  });
  // The page and the chart library it bundles: static files, so an SDK install needs neither.
  const page = await buildDashboardAssets();
  await mkdir(join(dist, 'dashboard'));
  for (const name of ASSET_FILES) await writeFile(join(dist, 'dashboard', name), page[name]);
  await build({
    ...cjs,
    entryPoints: { index: 'sdk/index.ts' },
    outdir: dist,
    // Like `openai`'s CommonJS entry: `const OpenAI = require('openai-wrapi'); new OpenAI()` works.
    // (`export * from 'openai'` also copied that function's own `prototype`, `name` and `length`.)
    footer: {
      js: [
        'module.exports = ((exp) => {',
        '  const descriptors = Object.getOwnPropertyDescriptors(exp);',
        "  for (const k of ['prototype', 'name', 'length', 'arguments', 'caller']) delete descriptors[k];",
        '  return Object.defineProperties(function OpenAI(...args) { return new exp.default(...args); }, descriptors);',
        '})(module.exports);',
      ].join('\n'),
    },
  });
  await build({ ...cjs, entryPoints: { register: 'sdk/register.ts' }, outdir: dist });

  const cli = join(dist, 'cli.mjs');
  await writeFile(cli, `#!/usr/bin/env node\n${await readFile(cli, 'utf8')}`);
  await chmod(cli, 0o755);

  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'sdk/tsconfig.build.json')], { stdio: 'inherit' });
  await publishDropInTypes(join(dist, 'types/sdk/client.d.ts'));
  await fixDeclarations(join(dist, 'types'));
}

/**
 * The declarations tsc writes for the drop-in name a fixed list of `OpenAI.*` types: those of the
 * `openai` this repository builds with. A user's `openai` may be any of 4.x-7.x, with other names,
 * so the published `OpenAI` is the installed package's own class (its instance, its statics, its
 * whole `OpenAI.*` namespace) and our options and properties are merged into it by augmentation.
 * The runtime value is still our subclass.
 */
async function publishDropInTypes(file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const start = text.indexOf('/**\n * `OpenAI` from the `openai` package');
  const classEnd = text.indexOf('\n}\n', text.indexOf('export declare class OpenAI extends BaseOpenAI {')) + 3;
  const namespace = text.indexOf('export declare namespace OpenAI {');
  const namespaceEnd = text.indexOf('\n}\n', namespace) + 3;
  if (start < 0 || classEnd < 3 || namespace < classEnd || namespaceEnd < 3) throw new Error(`unexpected declarations in ${file}`);
  const published = [
    '/**',
    ' * `OpenAI` from the installed `openai` package (its methods, types and errors, whatever its version),',
    ' * calling a stage\'s proxy, plus the options `project`, `staging`, `caching`, `proxyUrl`, `region`,',
    ' * `credentials` and `profile`. Throws `WrapiConfigError` when the stage\'s proxy URL cannot be found.',
    ' */',
    'export { BaseOpenAI as OpenAI };',
    "declare module 'openai' {",
    '    interface ClientOptions extends WrapiOptions {',
    '    }',
    '    interface OpenAI {',
    '        /** The stage this client calls. */',
    '        readonly staging: string;',
    '        /** Whether the proxy may answer from its cache. */',
    '        readonly caching: boolean;',
    '        /** Where the stage\'s proxy is, and where that was found. */',
    '        readonly target: StageTarget;',
    '    }',
    '}',
    '',
  ].join('\n');
  // Below the class, `OpenAI` named our class; the package's is `BaseOpenAI` in this file now.
  const between = text.slice(classEnd, namespace).replace(/\bclient is OpenAI\b/g, 'client is BaseOpenAI');
  await writeFile(file, text.slice(0, start) + published + between + text.slice(namespaceEnd));
}

/** Declarations name `.js` files; each gets a `.d.cts` twin naming `.cjs` for `require` users. */
async function fixDeclarations(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = (await readFile(file, 'utf8')).replace(/((?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2');
    await writeFile(file, text);
    const cts = text.replace(/((?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]+)\.js(['"])/g, '$1.cjs$2');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file.replace(/\.d\.ts$/, '.d.cts'), cts);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildPackage();
  console.error(`built ${dist}`);
}
