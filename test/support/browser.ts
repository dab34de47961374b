// Headless Debian Chromium driven by playwright-core, for tests that must look at a page the way a
// person would. `npx playwright install` cannot run here (no network), so we use the distro binary.

import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

// Everything that could make Chromium reach out on its own (updates, sync, safe-browsing lists) is off,
// so that a request seen by a test is one the page made.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export function chromiumAvailable(): boolean {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface Browser {
  readonly context: BrowserContext;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/**
 * A fresh profile per launch: no cache, cookies or service workers carried over from another test, so
 * "the page loaded nothing" means exactly that.
 */
export async function launchBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'logcurate-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: options.viewport ?? { width: 1280, height: 900 },
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

export interface OfflinePage {
  readonly page: Page;
  /** Every request the page attempted other than the document itself (all of them were aborted). */
  readonly attempted: string[];
  /** Requests that failed, including the ones we aborted. */
  readonly failed: string[];
  /** console.error messages and uncaught page errors. */
  readonly errors: string[];
}

/**
 * Opens `url` (normally a file:// URL) with every other request aborted and recorded. Listening on
 * both the route and the `request` event catches loads that routing does not see (file:// subresources).
 */
export async function openOffline(context: BrowserContext, url: string): Promise<OfflinePage> {
  const page = await context.newPage();
  const attempted: string[] = [];
  const failed: string[] = [];
  const errors: string[] = [];
  const note = (u: string) => {
    if (u !== url && !attempted.includes(u)) attempted.push(u);
  };
  await page.route('**/*', async (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    note(u);
    return route.abort('blockedbyclient');
  });
  page.on('request', (req) => note(req.url()));
  page.on('requestfailed', (req) => failed.push(`${req.url()}: ${req.failure()?.errorText ?? 'failed'}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(url, { waitUntil: 'load' });
  return { page, attempted, failed, errors };
}
