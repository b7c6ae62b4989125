// The public URL in a real browser: headless Chromium loads a page from an allowed origin that runs
// the README's browser example (extracted from README.md, not copied) against the local stack, and
// the same page from another origin, which CORS and the origin check must stop before OpenAI.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser } from 'playwright-core';
import { hasChromium, unless } from './helpers/binaries.ts';
import { launchChromium, pageErrors } from './helpers/browser.ts';
import { startTestStack, type TestStack } from './helpers/stack.ts';

const test = unless(hasChromium(), uvuTest);

/** The README's browser example: the first ```js block of its "Browser access" section. */
function readmeExample(): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Browser access'));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error('README: no js example under "Browser access"');
  return match[1];
}

/** A page that runs `script` (top-level await inside a module) and reports how it ended. */
const page = (script: string) => `<!doctype html><meta charset="utf-8"><title>public URL</title>
<pre id="out"></pre>
<script type="module">
try {
${script}
  document.body.dataset.state = 'done';
} catch (err) {
  document.body.dataset.error = String(err && err.message);
  document.body.dataset.state = 'failed';
}
</script>`;

/** Serves whatever `html()` gives at the time of the request, from an origin of its own. */
function servePage(html: () => string): Promise<{ origin: string; server: Server }> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html()));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })));
}

let t: TestStack;
let browser: Browser;
let allowed: { origin: string; server: Server };
let other: { origin: string; server: Server };
let html = '';

test.before(async () => {
  const example = readmeExample();
  assert.match(example, /const PUBLIC_URL = '[^']+';/);
  // The same page from two origins. The allowed one must be known before the stack starts, and the
  // page must know the stack's address: it is written once both run.
  allowed = await servePage(() => html);
  other = await servePage(() => html);
  t = await startTestStack({
    env: { OPENAI_WRAPI_PUBLIC_PROJECT: 'website', OPENAI_WRAPI_PUBLIC_ORIGINS: allowed.origin, OPENAI_WRAPI_PUBLIC_RPM: '10' },
  });
  await t.admin({ action: 'setLimit', project: 'website', limit: 1 });
  html = page(example.replace(/const PUBLIC_URL = '[^']+';/, `const PUBLIC_URL = '${t.stack.url}/public/dev';`));
  browser = await launchChromium();
});

test.after(async () => {
  await browser?.close();
  await t?.close();
  allowed?.server.close();
  other?.server.close();
});

test('a page from an allowed origin streams a chat through the public URL, billed as its client', async () => {
  const tab = await browser.newPage();
  const errors = pageErrors(tab);
  await tab.goto(allowed.origin);
  await tab.waitForFunction(() => document.body.dataset.state, undefined, { timeout: 15_000 });
  assert.is(await tab.evaluate(() => document.body.dataset.state), 'done', await tab.evaluate(() => document.body.dataset.error ?? ''));
  const text = await tab.textContent('#out');
  assert.ok(text && text.trim().split(/\s+/).length >= 3, `streamed text: ${text}`);
  assert.equal(errors, []);
  const sent = t.fake.requests.at(-1)!;
  assert.is(sent.body.stream, true);
  assert.is(sent.headers.authorization, `Bearer ${t.fake.apiKey}`);
  const start = Date.now();
  let rows: { project: string; user: string }[] = [];
  while (Date.now() - start < 5_000) {
    rows = (await t.admin({ action: 'usage' })).rows;
    if (rows.some((r) => r.project === 'website' && r.user === 'public:127.0.0.1')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(rows.some((r) => r.project === 'website' && r.user === 'public:127.0.0.1'), JSON.stringify(rows));
  await tab.close();
});

test('the same page from another origin is refused before anything reaches OpenAI', async () => {
  const forwarded = t.fake.requests.length;
  const tab = await browser.newPage();
  const errors = pageErrors(tab);
  await tab.goto(other.origin);
  await tab.waitForFunction(() => document.body.dataset.state, undefined, { timeout: 15_000 });
  assert.is(await tab.evaluate(() => document.body.dataset.state), 'failed');
  // The browser stops at the preflight (403, no CORS headers): the page learns only that it failed.
  assert.match(await tab.evaluate(() => document.body.dataset.error ?? ''), /Failed to fetch/);
  assert.ok(errors.some((e) => /CORS|Access-Control/i.test(e)), errors.join('\n'));
  assert.is(await tab.textContent('#out'), '');
  assert.is(t.fake.requests.length, forwarded);
  await tab.close();
});

test.run();
