// The dashboard page's static files: index.html, app.js (the page and Observable Plot, bundled) and
// app.css. The published package ships them prebuilt in dist/dashboard/ (sdk/build.ts); run from
// the repository, they are bundled on first use with esbuild, a dev dependency. No CDN, ever.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Set to true by the package build (esbuild `define`); undeclared when run from source. */
declare const WRAPI_DASHBOARD_PREBUILT: boolean | undefined;

export const ASSET_FILES = ['index.html', 'app.js', 'app.css'] as const;
export type AssetName = (typeof ASSET_FILES)[number];

export interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

const TYPES: Record<AssetName, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

let loading: Promise<Map<string, Asset>> | undefined;

/** The page's files, loaded (or built) once per process. */
export function loadAssets(): Promise<Map<string, Asset>> {
  loading ??= (typeof WRAPI_DASHBOARD_PREBUILT !== 'undefined' ? readPrebuilt() : buildDashboardAssets()).then((files) => {
    const assets = new Map<string, Asset>();
    for (const name of ASSET_FILES) {
      const body = Buffer.from(files[name]);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      assets.set(name, { type: TYPES[name], body, gzip: gzipSync(body, { level: 9 }), etag });
    }
    return assets;
  });
  loading.catch(() => (loading = undefined));
  return loading;
}

/** dist/dashboard/, next to the bundle that holds this code (dist/ or dist/chunks/). */
async function readPrebuilt(): Promise<Record<AssetName, Uint8Array>> {
  const dir = ['./dashboard/', '../dashboard/'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((d) => existsSync(`${d}index.html`));
  if (!dir) throw new Error('The dashboard files are missing from this installation of openai-wrapi (dist/dashboard/): reinstall it.');
  const [html, js, css] = await Promise.all(ASSET_FILES.map((name) => readFile(`${dir}${name}`)));
  return { 'index.html': html, 'app.js': js, 'app.css': css };
}

/** Bundles the page from sdk/dashboard/page/ (the package build writes the result to dist/dashboard/). */
export async function buildDashboardAssets(): Promise<Record<AssetName, Uint8Array>> {
  const page = fileURLToPath(new URL('./page/', import.meta.url));
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error('Building the dashboard page needs esbuild (a dev dependency of openai-wrapi): npm install');
  }
  const out = await esbuild.build({
    entryPoints: { app: `${page}app.ts`, style: `${page}app.css` },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome109', 'firefox115', 'safari15.4'],
    write: false,
    outdir: '/dashboard',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const file = (ext: string) => out.outputFiles.find((f) => f.path.endsWith(ext))!.contents;
  return { 'index.html': await readFile(`${page}index.html`), 'app.js': file('.js'), 'app.css': file('.css') };
}
