import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countIntoEdges, esc, linearEdges, renderReport, unsafeSvg, type ReportData } from '../pipeline/report.js';
import { chromiumAvailable, launchBrowser, openOffline, type Browser } from './support/browser.js';

const HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', '<|endoftext|>', 'nul\u0000bell\u0007del\u007f'] as const;

/** Deterministic pseudo-random numbers, so the fixtures and any failure are reproducible. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function tokenTotals(n: number, seed: number): number[] {
  const rnd = lcg(seed);
  // Roughly log-normal, like real chat lengths: most short, a long tail.
  return Array.from({ length: n }, () => Math.round(Math.exp(5.5 + 0.8 * Math.sqrt(-2 * Math.log(rnd() || 1e-9)) * Math.cos(2 * Math.PI * rnd()))));
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const total = s.reduce((a, b) => a + b, 0);
  return { total, mean: s.length ? total / s.length : 0, p50: s[Math.floor(s.length * 0.5)] ?? 0, p95: s[Math.floor(s.length * 0.95)] ?? 0, max: s[s.length - 1] ?? 0 };
}

function fullData(overrides: Partial<ReportData> = {}): ReportData {
  const train = tokenTotals(4_500, 1);
  const test = tokenTotals(500, 2);
  const rnd = lcg(3);
  const before = Array.from({ length: 10_000 }, () => 1 + Math.floor(rnd() * 5));
  const after = before.filter((v) => v >= 4).slice(0, 5_000);
  return {
    run: { id: '20250101T020000Z-7f3a', name: 'support-nightly', started_at: '2025-01-01T02:00:00.000Z', finished_at: '2025-01-01T02:03:12.500Z', seed: 42 },
    model: { name: 'gpt-4o-mini-2024-07-18', encoding: 'o200k_base', max_tokens_per_example: 65_536 },
    stages: [
      { name: 'filter', in: 10_000, out: 6_400, dropped: { feedback_below_min: 3_000, no_feedback: 600 } },
      { name: 'redact_pii', in: 6_400, out: 6_350, dropped: { 'pii:api_key': 50 } },
      { name: 'dedupe', in: 6_350, out: 5_600, dropped: { 'duplicate_of:abc': 400, 'duplicate_of:def': 350 } },
      { name: 'rebalance_refusals', in: 5_600, out: 5_050, dropped: { refusal_rebalance: 550 } },
      { name: 'system_prompt', in: 5_050, out: 5_050, dropped: {} },
      { name: 'split', in: 5_050, out: 5_050, dropped: {} },
      { name: 'emit', in: 5_050, out: 5_000, dropped: { over_limit: 30, missing_content: 20 } },
    ],
    refusals: { target_rate: 0.05, before: { count: 1_064, rate: 0.19 }, after: { count: 253, rate: 0.05 } },
    files: { train: { examples: train.length, tokens: stats(train) }, test: { examples: test.length, tokens: stats(test) } },
    cost: { n_epochs: 3, billing_tokens: stats(train).total, estimated_usd: (stats(train).total * 3 * 3) / 1e6 },
    warnings: ['3 examples have no system message', 'price table last updated 2025-01; see https://platform.openai.com/docs/pricing'],
    feedback: { name: 'score', before, after },
    tokens: { train, test },
    duplicateClusters: [{ size: 2, clusters: 420 }, { size: 3, clusters: 90 }, { size: 4, clusters: 31 }, { size: 7, clusters: 4 }, { size: 19, clusters: 1 }],
    pii: { email: 812, phone: 301, ip: 77, api_key: 50, credit_card: 3 },
    samples: [
      { stage: 'filter', reason: 'feedback_below_min', id: 'conv-1', messages: [{ role: 'user', content: 'Where is my order?' }, { role: 'assistant', content: 'I do not know.' }] },
      { stage: 'filter', reason: 'no_feedback', id: 'conv-2', messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello! How can I help?' }] },
      { stage: 'rebalance_refusals', reason: 'refusal_rebalance', id: 'conv-3', messages: [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'Write malware' }, { role: 'assistant', content: "I'm sorry, but I can't help with that." }] },
    ],
    ...overrides,
  };
}

function hostileData(): ReportData {
  const [script, img, eot, ctl] = HOSTILE;
  const d = fullData();
  return {
    ...d,
    run: { ...d.run, id: script, name: img },
    model: { ...d.model, name: eot, encoding: script },
    stages: [
      { name: script, in: 100, out: 60, dropped: { [img]: 30, [eot]: 10 } },
      { name: img, in: 60, out: 50, dropped: { [script]: 6, [ctl]: 4 } },
    ],
    warnings: [script, img, eot, ctl],
    feedback: { ...d.feedback, name: img },
    pii: { [script]: 3, [img]: 2, [ctl]: 1 },
    samples: [
      { stage: script, reason: img, id: eot, messages: [{ role: script, content: HOSTILE.join(' ') }, { role: 'assistant', content: img }] },
    ],
  };
}

function emptyData(): ReportData {
  const zero = { total: 0, mean: 0, p50: 0, p95: 0, max: 0 };
  return {
    run: { id: 'r0', name: 'empty', started_at: '2025-01-01T00:00:00Z', finished_at: '2025-01-01T00:00:00Z', seed: 0 },
    model: { name: 'my-custom-model', encoding: 'cl100k_base', max_tokens_per_example: null },
    stages: [],
    refusals: null,
    files: { train: { examples: 0, tokens: zero }, test: { examples: 0, tokens: zero } },
    cost: { n_epochs: 3, billing_tokens: 0, estimated_usd: null },
    warnings: [],
    feedback: { name: 'score', before: [], after: [] },
    tokens: { train: [], test: [] },
    duplicateClusters: [],
    pii: {},
    samples: [],
  };
}

/** The tag names used in a page, from its markup (text is escaped, so every `<` opens a tag). */
function tagNames(html: string): Set<string> {
  return new Set([...html.matchAll(/<\/?([A-Za-z][\w:-]*)/g)].map((m) => m[1].toLowerCase()));
}

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg\b[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

function section(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  expect(start, `section #${id}`).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf('</section>', start));
}

const PAGE_TAGS = new Set(['!doctype', 'html', 'head', 'meta', 'link', 'title', 'style', 'body', 'header', 'div', 'h1', 'h2', 'h3', 'dl', 'dt', 'dd', 'code', 'span', 'nav', 'a', 'main', 'section', 'ul', 'li', 'p', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'figure', 'details', 'summary', 'article', 'pre', 'footer',
  'svg', 'g', 'path', 'rect', 'line', 'text', 'tspan', 'defs', 'clippath']);

describe('renderReport (markup)', () => {
  let full: string;
  beforeAll(async () => {
    full = await renderReport(fullData());
  });

  it('is one page with inline styles and a chart per topic', () => {
    expect(full.startsWith('<!doctype html>')).toBe(true);
    expect(full).toContain('<style>');
    expect(full).toContain('<title>logcurate report — support-nightly · 20250101T020000Z-7f3a</title>');
    expect(full).toContain('gpt-4o-mini-2024-07-18');
    for (const id of ['funnel', 'files', 'tokens', 'feedback', 'refusals', 'duplicates', 'samples']) section(full, id);
    expect(svgs(full).length).toBe(6);
    expect(svgs(section(full, 'funnel'))).toHaveLength(1);
    expect(svgs(section(full, 'tokens'))).toHaveLength(1);
    expect(svgs(section(full, 'feedback'))).toHaveLength(1);
    expect(svgs(section(full, 'refusals'))).toHaveLength(1);
    expect(svgs(section(full, 'duplicates'))).toHaveLength(2);
  });

  it('writes chart coordinates with few decimals: no long digit runs a PII scan could take for card numbers', async () => {
    const page = await renderReport(fullData());
    const charts = svgs(page).join('');
    expect(charts.length).toBeGreaterThan(1000);
    expect(charts.match(/\d{8,}/g) ?? []).toEqual([]);
  });

  it('references no external resource and runs no script', () => {
    expect(full).not.toMatch(/<script/i);
    expect(full).not.toMatch(/<(img|iframe|object|embed|video|audio|source|base)\b/i);
    expect(full).not.toMatch(/\b(src|href|action|poster|srcset)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(full).not.toMatch(/url\(\s*["']?\s*(https?:)?\/\//i);
    expect(full).not.toMatch(/@import/i);
    // The only link elements point at data: (an empty favicon, which stops Chromium from asking for one).
    for (const m of full.matchAll(/<link\b[^>]*>/g)) expect(m[0]).toMatch(/href="data:/);
    // The one URL in the page is inside a warning, as escaped text.
    const urls = [...full.matchAll(/https?:\/\/[^\s<"]*/g)].map((m) => m[0]);
    expect(urls).toEqual(['https://platform.openai.com/docs/pricing']);
    expect(section(full, 'warnings')).toContain('<li>price table last updated 2025-01; see https://platform.openai.com/docs/pricing</li>');
    // Defence in depth: the page itself forbids scripts and loads.
    expect(full).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
    expect([...tagNames(full)].filter((t) => !PAGE_TAGS.has(t))).toEqual([]);
  });

  it('shows the funnel, files, cost and refusal figures', () => {
    const funnel = section(full, 'funnel');
    expect(funnel).toContain('<tr><td class="num">1</td><td><code>filter</code></td><td class="num">10,000</td><td class="num">6,400</td><td class="num">3,600</td><td class="num">64.0%</td>');
    // Per-kept-id dedupe reasons are one reason, not one per kept conversation.
    expect(funnel).toContain('<code>duplicate_of</code> 750');
    expect(funnel).not.toContain('duplicate_of:abc');
    expect(funnel).toContain('6,400 of 10,000 kept');
    const files = section(full, 'files');
    expect(files).toContain('<td><code>train.jsonl</code></td><td class="num">4,500</td>');
    expect(files).toContain('<td><code>test.jsonl</code></td><td class="num">500</td>');
    expect(section(full, 'refusals')).toContain('1,064 (19.0%) → 253 (5.0%); target 5.0%');
    expect(section(full, 'refusals')).toContain('target 5.0%</text>');
    expect(section(full, 'tokens')).toContain('limit 65,536</text>');
  });

  it('escapes hostile strings everywhere they appear, including inside the charts', async () => {
    const html = await renderReport(hostileData());
    for (const s of HOSTILE) {
      expect(html).not.toContain(s);
      expect(html).toContain(esc(s));
    }
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&lt;|endoftext|&gt;');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img/i);
    // Control characters other than tab and line breaks are HTML parse errors: shown as control pictures.
    expect(html).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/);
    expect(html).toContain('nul\u2400bell\u2407del\u2421');
    // No attribute anywhere is an event handler: hostile text can only be text.
    // Attribute values are dropped first: escaped hostile text inside an aria-label is just text.
    for (const m of html.matchAll(/<[A-Za-z][^>]*>/g)) expect(m[0].replace(/"[^"]*"/g, '""')).not.toMatch(/\son\w+\s*=/i);
    expect([...tagNames(html)].filter((t) => !PAGE_TAGS.has(t))).toEqual([]);
    // Hostile stage names, reasons and PII kinds reach the SVG as escaped text, and each SVG passes the check.
    const charts = svgs(html);
    expect(charts.length).toBeGreaterThanOrEqual(5);
    for (const svg of charts) expect(unsafeSvg(svg)).toBeNull();
    expect(svgs(section(html, 'funnel'))[0]).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(svgs(section(html, 'duplicates'))[1]).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // The sample conversation keeps its hostile text visible to the analyst, escaped.
    expect(section(html, 'samples')).toContain(`<pre>${esc(HOSTILE.join(' '))}</pre>`);
  });

  it('renders empty data as "no data" notes instead of charts', async () => {
    const html = await renderReport(emptyData());
    expect(svgs(html)).toEqual([]);
    expect(html.match(/class="nodata"/g)?.length).toBeGreaterThanOrEqual(7);
    expect(section(html, 'funnel')).toContain('No stages ran.');
    expect(section(html, 'tokens')).toContain('No examples reached the files.');
    expect(section(html, 'tokens')).toContain('the model has no known per-example limit');
    expect(section(html, 'feedback')).toContain('No feedback values were recorded');
    expect(section(html, 'refusals')).toContain('did not rebalance refusals');
    expect(section(html, 'duplicates')).toContain('No duplicate clusters were found.');
    expect(section(html, 'duplicates')).toContain('No PII was redacted.');
    expect(section(html, 'samples')).toContain('No dropped conversations were sampled.');
    expect(section(html, 'files')).toContain('n/a (no price for this model)');
    expect(html).not.toMatch(/NaN|undefined|Infinity/);
    expect(html).not.toContain('id="warnings"');
  });

  it('draws partial data: one split, no limit, non-finite values ignored', async () => {
    const html = await renderReport({
      ...emptyData(),
      tokens: { train: [10, 20, 20, 30, Number.NaN], test: [] },
      feedback: { name: 'thumbs', before: [0, 1, 1, Number.POSITIVE_INFINITY], after: [] },
    });
    const tokens = svgs(section(html, 'tokens'));
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toContain('train: 4 examples, median 20, max 30');
    expect(tokens[0]).not.toContain('test:');
    expect(tokens[0]).not.toMatch(/>limit /);
    expect(svgs(section(html, 'feedback'))).toHaveLength(1);
    expect(section(html, 'feedback')).toContain('3 values, mean 0.67');
    expect(html).not.toMatch(/NaN|undefined/);
  });

  it('bins a million token values into at most 60 bars per split and stays small', async () => {
    const rnd = lcg(9);
    const train = Array.from({ length: 1_000_000 }, () => 20 + Math.floor(rnd() * rnd() * 8_000));
    const test = train.slice(0, 100_000);
    const html = await renderReport({ ...fullData(), tokens: { train, test }, feedback: { name: 'score', before: train.map((t) => t / 1000), after: test.map((t) => t / 1000) } });
    const [tokenSvg] = svgs(section(html, 'tokens'));
    const bars = tokenSvg.match(/aria-roledescription="bar"/g)?.length ?? 0;
    expect(bars).toBeGreaterThan(10);
    expect(bars).toBeLessThanOrEqual(120);
    expect(tokenSvg).toContain('train: 1,000,000 examples');
    // Continuous feedback is binned into at most 20 ranges (× before/after).
    const feedbackBars = svgs(section(html, 'feedback'))[0].match(/aria-roledescription="bar"/g)?.length ?? 0;
    expect(feedbackBars).toBeLessThanOrEqual(40);
    expect(html.length).toBeLessThan(400_000);
  });

  it('uses a log axis when the limit is far beyond the data, a linear one when it is near', async () => {
    const far = await renderReport(fullData());
    expect(svgs(section(far, 'tokens'))[0]).toContain('(log scale)');
    const near = await renderReport(fullData({ model: { name: 'gpt-3.5-turbo-0613', encoding: 'cl100k_base', max_tokens_per_example: 4_096 } }));
    const svg = svgs(section(near, 'tokens'))[0];
    expect(svg).not.toContain('(log scale)');
    expect(svg).toContain('limit 4,096</text>');
    // A narrow spread far below the limit: the data's own linear axis, the limit named in the title, not drawn.
    const narrow = Array.from({ length: 21 }, (_, i) => 58 + (i % 17));
    const small = await renderReport(fullData({ tokens: { train: narrow, test: [] } }));
    const smallSvg = svgs(section(small, 'tokens'))[0];
    expect(smallSvg).not.toContain('(log scale)');
    expect(smallSvg).not.toContain('limit 65,536</text>');
    expect(smallSvg).toContain('train: 21 examples, median 64, max 74; limit 65,536, far beyond (not drawn)');
    expect(smallSvg).toContain("for a linear scale with values from 58 to");
  });

  it('truncates long messages and long conversations in the samples', async () => {
    const long = 'x'.repeat(799) + '😀' + 'y'.repeat(5_000);
    const messages = Array.from({ length: 30 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` }));
    messages[0] = { role: 'user', content: long };
    const samples = Array.from({ length: 8 }, (_, i) => ({ stage: 'filter', reason: 'too_long', id: `c${i}`, messages }));
    const html = section(await renderReport({ ...emptyData(), samples }), 'samples');
    // Cut before the emoji rather than through the middle of its surrogate pair.
    expect(html).toContain(`<pre>${'x'.repeat(799)}<span class="cut">… 5,002 more characters</span></pre>`);
    expect(html).not.toContain('y'.repeat(100));
    expect(html).toContain('… 18 messages omitted …');
    expect(html).toContain('turn 5');
    expect(html).not.toContain('turn 6<');
    expect(html).toContain('turn 29');
    // At most five conversations per reason, and the summary says how many there were.
    expect(html.match(/<article class="conv">/g)).toHaveLength(5);
    expect(html).toContain('(showing 5 of 8)');
    expect(html).toMatch(/<details>\s*<summary><code class="stage">filter<\/code> <code class="reason-code">too_long<\/code>/);
  });
});

describe('chart helpers', () => {
  it('linearEdges covers the range with nice steps and never more than maxBins bins', () => {
    for (const [lo, hi] of [[0, 1], [31, 3_988], [1, 1_000_000], [0.2, 0.9], [-5, 5], [7, 7]] as const) {
      const edges = linearEdges(lo, hi, 60);
      expect(edges.length - 1).toBeLessThanOrEqual(60);
      expect(edges[0]).toBeLessThanOrEqual(lo);
      expect(edges[edges.length - 1]).toBeGreaterThan(hi);
      const step = edges[1] - edges[0];
      for (let i = 1; i < edges.length; i++) expect(edges[i] - edges[i - 1]).toBeCloseTo(step, 9);
    }
    expect(linearEdges(0, 100, 10)).toEqual([0, 20, 40, 60, 80, 100, 120]);
  });

  it('countIntoEdges counts every finite value once', () => {
    const edges = [0, 10, 20, 30];
    expect(countIntoEdges([0, 5, 9.99, 10, 29, 30, -1, 45, Number.NaN], edges)).toEqual([4, 1, 3]);
  });

  it('unsafeSvg accepts vega output and rejects anything that could load or run', () => {
    expect(unsafeSvg('<svg width="1" height="1"><g clip-path="url(#clip1)"><text>&lt;b&gt;</text></g></svg>')).toBeNull();
    expect(unsafeSvg('<svg><script>alert(1)</script></svg>')).toBe('element <script>');
    expect(unsafeSvg('<svg><g onload="alert(1)"></g></svg>')).toBe('attribute onload');
    expect(unsafeSvg('<svg><a href="https://example.com"><text>x</text></a></svg>')).toBe('element <a>');
    expect(unsafeSvg('<svg><g xlink:href="#x"></g></svg>')).toBe('attribute xlink:href');
    expect(unsafeSvg('<svg><foreignObject></foreignObject></svg>')).toBe('element <foreignObject>');
    expect(unsafeSvg('<svg><rect fill="url(https://x/y.svg#p)"/></svg>')).toBe('url() in fill');
    expect(unsafeSvg('<svg><g style="mix-blend-mode: multiply"></g></svg>')).toBeNull();
    expect(unsafeSvg('<svg><g style="fill: url(//evil.example/p.svg#x)"></g></svg>')).toBe('url() in style');
    expect(unsafeSvg('<svg><text>a < b</text></svg>')).toBe('unescaped "<"');
  });
});

// ---------------------------------------------------------------------------------------------------
// In a real browser: the page must draw with the network cut off.

const haveChromium = chromiumAvailable();
const requireChromium = Boolean(process.env.CI);
if (!haveChromium) {
  const msg = '/usr/bin/chromium not found: report browser tests ' + (requireChromium ? 'FAIL (CI is set and CI installs chromium)' : 'are SKIPPED (apt-get install -y chromium to run them)');
  console.warn(`\n⚠ ${msg}\n`);
}

describe.skipIf(!haveChromium && !requireChromium)('report.html in headless Chromium', () => {
  let dir: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!haveChromium) throw new Error('CI is set but /usr/bin/chromium is missing: install it (apt-get install -y chromium)');
    dir = mkdtempSync(join(tmpdir(), 'logcurate-report-'));
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    if (dir && !process.env.KEEP_REPORT_ARTIFACTS) rmSync(dir, { recursive: true, force: true });
    else if (dir) console.log(`report artifacts kept in ${dir}`);
  });

  it('the harness notices loads: a page with remote and local resources is caught', async () => {
    // Without this, "nothing was attempted" could just mean the listeners never fire for file:// pages.
    const file = join(dir, 'control.html');
    writeFileSync(file, '<!doctype html><title>c</title><img src="https://example.com/x.png"><img src="local.png"><link rel="stylesheet" href="http://example.com/s.css">');
    const { page, attempted, failed } = await openOffline(browser!.context, pathToFileURL(file).href);
    await page.close();
    expect(attempted).toEqual(expect.arrayContaining(['https://example.com/x.png', 'http://example.com/s.css', pathToFileURL(join(dir, 'local.png')).href]));
    expect(failed.length).toBeGreaterThanOrEqual(2);
  });

  it('draws every chart with no request, no console error and no script, and screenshots well', async () => {
    const file = join(dir, 'report.html');
    const data = fullData();
    // Hostile samples and warnings in the browser too: they must stay inert text.
    data.samples = [...data.samples, ...hostileData().samples];
    data.warnings = [...data.warnings, ...HOSTILE];
    writeFileSync(file, await renderReport(data));
    const url = pathToFileURL(file).href;
    const { page, attempted, failed, errors } = await openOffline(browser!.context, url);

    const charts = page.locator('svg.chart');
    expect(await charts.count()).toBeGreaterThanOrEqual(6);
    for (const chart of await charts.all()) {
      await chart.scrollIntoViewIfNeeded();
      expect(await chart.isVisible()).toBe(true);
      const box = await chart.boundingBox();
      expect(box?.width).toBeGreaterThan(100);
      expect(box?.height).toBeGreaterThan(50);
    }
    // Hostile text rendered as text: no element was created from it.
    expect(await page.locator('script, img, iframe, object, embed').count()).toBe(0);
    await expect(page.locator('#warnings li').nth(3).textContent()).resolves.toBe(HOSTILE[1]);

    // Samples are collapsed until opened; opening one shows its messages.
    const first = page.locator('#samples details').first();
    expect(await first.locator('pre').first().isVisible()).toBe(false);
    await first.locator('summary').click();
    expect(await first.locator('pre').first().isVisible()).toBe(true);

    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    await page.close();

    expect(attempted).toEqual([]);
    expect(failed).toEqual([]);
    expect(errors).toEqual([]);
    expect(statSync(shot).size).toBeGreaterThan(50_000);
    expect(readFileSync(shot).subarray(1, 4).toString('latin1')).toBe('PNG');
  });
});
