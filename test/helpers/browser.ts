// Debian's Chromium, headless, driven by playwright-core: never a downloaded browser (.ci/run
// installs the `chromium` package). Override the binary with CHROMIUM_PATH.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ARTIFACTS = join(new URL('..', import.meta.url).pathname, 'artifacts');

export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** The states the dashboard page settles in (`body[data-state]`), everything but `loading`. */
export const SETTLED = ['ready', 'empty', 'session', 'not_admin', 'unreachable', 'config', 'refused'];

/** Waits until the page has drawn an answer (or a problem) and returns which. */
export async function settledState(page: Page, timeout = 10_000): Promise<string> {
  await page.waitForFunction((states) => states.includes(document.body.dataset.state ?? ''), SETTLED, { timeout });
  return page.evaluate(() => document.body.dataset.state ?? '');
}

/** Collects errors the page throws or logs, so a test can assert there were none. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return errors;
}

/** Runs `action` (a click, a key) and waits for the answer it causes to be drawn. */
export async function afterAnswer(page: Page, action: () => Promise<unknown>, timeout = 10_000): Promise<string> {
  const before = Number(await page.evaluate(() => document.body.dataset.answers ?? 0));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.answers ?? 0) > n, before, { timeout });
  return page.evaluate(() => document.body.dataset.state ?? '');
}
