// report.html: one self-contained page an analyst can open from disk, mail, or archive.
//
// Every chart is a vega-lite spec compiled and rendered to SVG here, in Node, so the page needs no
// JavaScript and makes no network request (a Content-Security-Policy meta tag forbids both). Large arrays
// are binned or counted before they reach vega: vega then lays out at most a few dozen marks per chart,
// whatever the size of the run, which keeps rendering fast and the page small.
//
// Everything that comes from data (log text, ids, stage names, reasons, warnings) is untrusted and is
// HTML-escaped at the point where it enters the markup. Vega escapes the text it writes into SVG; each SVG
// is additionally checked against an allowlist of elements and attributes before it is inlined.

import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { VERSION } from './version.js';

export interface TokenStats {
  total: number;
  mean: number;
  p50: number;
  p95: number;
  max: number;
}

export interface ReportData {
  run: { id: string; name: string; started_at: string; finished_at: string; seed: number };
  model: { name: string; encoding: string; max_tokens_per_example: number | null };
  /** The funnel, in stage order; a stage may repeat. */
  stages: readonly { name: string; in: number; out: number; dropped: Readonly<Record<string, number>> }[];
  refusals: {
    target_rate: number;
    before: { count: number; rate: number };
    after: { count: number; rate: number };
  } | null;
  files: { train: { examples: number; tokens: TokenStats }; test: { examples: number; tokens: TokenStats } };
  cost: { n_epochs: number; billing_tokens: number; estimated_usd: number | null };
  warnings: readonly string[];
  /** Aggregated feedback values of the conversations entering the run, and of those that reached the files. */
  feedback: { name: string; before: readonly number[]; after: readonly number[] };
  /** Per-example token totals. */
  tokens: { train: readonly number[]; test: readonly number[] };
  /** Histogram: cluster size → number of clusters. */
  duplicateClusters: readonly { size: number; clusters: number }[];
  /** Redactions by kind. */
  pii: Readonly<Record<string, number>>;
  /** A few dropped conversations per reason. */
  samples: readonly {
    stage: string;
    reason: string;
    id: string;
    messages: readonly { role: string; content: string }[];
  }[];
}

// Limits that keep the page light and readable however much the caller hands us.
const MAX_HIST_BINS = 60;
const MAX_FEEDBACK_CATEGORIES = 20;
const MAX_CHART_REASONS = 8;
const MAX_TABLE_REASONS = 10;
const MAX_SAMPLES_PER_REASON = 5;
const MAX_SAMPLE_GROUPS = 100;
const MAX_MESSAGE_CHARS = 800;
const MAX_MESSAGES_HEAD = 6;
const MAX_MESSAGES_TAIL = 6;
const MAX_LABEL_CHARS = 60;

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", Arial, sans-serif';
const KEPT_COLOR = '#3b6ea8';
const REASON_COLORS = ['#e45756', '#f58518', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#72b7b2', '#54a24b', '#bab0ac'];
const BEFORE_COLOR = '#a9b4c2';
const AFTER_COLOR = KEPT_COLOR;
const LIMIT_COLOR = '#c0392b';
const CHART_WIDTH = 800;
// Counts are whole numbers: never a 0.5 tick, and 2,000 rather than d3's "2k"/"0.5k" mix.
const COUNT_AXIS = { format: ',d', tickMinStep: 1 } as const;

export async function renderReport(data: ReportData): Promise<string> {
  const sections = [
    summarySection(data),
    warningsSection(data.warnings),
    await funnelSection(data.stages),
    filesSection(data),
    await tokensSection(data),
    await feedbackSection(data.feedback),
    await refusalsSection(data.refusals),
    await duplicatesAndPiiSection(data.duplicateClusters, data.pii),
    samplesSection(data.samples),
  ];
  const title = `${data.run.name} · ${data.run.id}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="logcurate ${esc(VERSION)}">
<link rel="icon" href="data:,">
<title>logcurate report — ${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header class="page-header">
  <div class="wrap">
    <div class="eyebrow">logcurate curation report</div>
    <h1>${esc(data.run.name)}</h1>
    <dl class="meta">
      <div><dt>Run</dt><dd><code>${esc(data.run.id)}</code></dd></div>
      <div><dt>Model</dt><dd><code>${esc(data.model.name)}</code> <span class="muted">(${esc(data.model.encoding)}, limit ${data.model.max_tokens_per_example === null ? 'unknown' : fmtInt(data.model.max_tokens_per_example)} tokens/example)</span></dd></div>
      <div><dt>Started</dt><dd>${esc(data.run.started_at)}</dd></div>
      <div><dt>Finished</dt><dd>${esc(data.run.finished_at)}${durationNote(data.run.started_at, data.run.finished_at)}</dd></div>
      <div><dt>Seed</dt><dd>${fmtInt(data.run.seed)}</dd></div>
    </dl>
    <nav class="toc">
      <a href="#funnel">Funnel</a><a href="#files">Files &amp; cost</a><a href="#tokens">Tokens</a><a href="#feedback">Feedback</a><a href="#refusals">Refusals</a><a href="#duplicates">Duplicates &amp; PII</a><a href="#samples">Dropped samples</a>
    </nav>
  </div>
</header>
<main class="wrap">
${controlPictures(sections.join('\n'))}
</main>
<footer class="wrap muted">Generated by logcurate ${esc(VERSION)}. Charts are static SVG rendered at report time; this page loads nothing and runs no scripts.</footer>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------------
// Sections

function summarySection(d: ReportData): string {
  const first = d.stages[0];
  const entered = first ? first.in : d.files.train.examples + d.files.test.examples;
  const kept = d.files.train.examples + d.files.test.examples;
  const cards: [string, string, string][] = [
    ['Conversations in', fmtInt(entered), `${fmtInt(d.stages.length)} stage${d.stages.length === 1 ? '' : 's'}`],
    ['Examples out', fmtInt(kept), entered > 0 ? `${fmtPct(kept / entered)} of input` : ''],
    ['Train examples', fmtInt(d.files.train.examples), `+ ${fmtInt(d.files.test.examples)} test`],
    ['Billing tokens', fmtInt(d.cost.billing_tokens), `× ${fmtInt(d.cost.n_epochs)} epoch${d.cost.n_epochs === 1 ? '' : 's'}`],
    ['Estimated cost', d.cost.estimated_usd === null ? 'n/a' : fmtUsd(d.cost.estimated_usd), d.cost.estimated_usd === null ? 'model not in price table' : 'USD'],
    ['Warnings', fmtInt(d.warnings.length), d.warnings.length ? 'see below' : 'none'],
  ];
  return `<section id="summary" class="cards">
${cards.map(([label, value, note]) => `<div class="card"><div class="card-label">${esc(label)}</div><div class="card-value">${value}</div><div class="card-note">${esc(note)}</div></div>`).join('\n')}
</section>`;
}

function warningsSection(warnings: readonly string[]): string {
  if (warnings.length === 0) return '';
  return `<section id="warnings" class="panel warn">
<h2>Warnings</h2>
<ul>${warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>
</section>`;
}

async function funnelSection(stages: ReportData['stages']): Promise<string> {
  const chart = stages.length === 0 ? noData('No stages ran.') : await renderChart(funnelSpec(stages));
  const rows = stages.map((s, i) => {
    const dropped = s.in - s.out;
    const reasons = sortedReasons(s.dropped);
    const shown = reasons.slice(0, MAX_TABLE_REASONS);
    const rest = reasons.slice(MAX_TABLE_REASONS);
    const restCount = rest.reduce((a, [, n]) => a + n, 0);
    const reasonCells = shown.map(([r, n]) => `<span class="reason"><code>${esc(r)}</code> ${fmtInt(n)}</span>`).join(' ')
      + (rest.length ? ` <span class="muted">+${fmtInt(rest.length)} more reasons (${fmtInt(restCount)})</span>` : '');
    return `<tr><td class="num">${i + 1}</td><td><code>${esc(s.name)}</code></td><td class="num">${fmtInt(s.in)}</td><td class="num">${fmtInt(s.out)}</td><td class="num">${fmtInt(dropped)}</td><td class="num">${s.in > 0 ? fmtPct(s.out / s.in) : '—'}</td><td>${reasonCells || '<span class="muted">—</span>'}</td></tr>`;
  });
  return `<section id="funnel" class="panel">
<h2>Stage funnel</h2>
<p class="lede">Each bar is the stage's input: the blue part went on to the next stage, the coloured parts were dropped, by reason.</p>
${chart}
<table>
<thead><tr><th class="num">#</th><th>Stage</th><th class="num">In</th><th class="num">Out</th><th class="num">Dropped</th><th class="num">Kept</th><th>Drop reasons</th></tr></thead>
<tbody>${rows.join('\n') || '<tr><td colspan="7" class="muted">No stages ran.</td></tr>'}</tbody>
</table>
</section>`;
}

function filesSection(d: ReportData): string {
  const fileRow = (split: string, f: ReportData['files']['train']) =>
    `<tr><td><code>${split}.jsonl</code></td><td class="num">${fmtInt(f.examples)}</td><td class="num">${fmtInt(f.tokens.total)}</td><td class="num">${fmtNum(f.tokens.mean, 1)}</td><td class="num">${fmtInt(f.tokens.p50)}</td><td class="num">${fmtInt(f.tokens.p95)}</td><td class="num">${fmtInt(f.tokens.max)}</td></tr>`;
  return `<section id="files" class="panel">
<h2>Files &amp; cost</h2>
<div class="two">
<div>
<h3>Files</h3>
<table>
<thead><tr><th>File</th><th class="num">Examples</th><th class="num">Tokens</th><th class="num">Mean</th><th class="num">p50</th><th class="num">p95</th><th class="num">Max</th></tr></thead>
<tbody>${fileRow('train', d.files.train)}${fileRow('test', d.files.test)}</tbody>
</table>
</div>
<div>
<h3>Cost estimate</h3>
<table class="kv">
<tbody>
<tr><th>Model</th><td><code>${esc(d.model.name)}</code></td></tr>
<tr><th>Epochs</th><td class="num">${fmtInt(d.cost.n_epochs)}</td></tr>
<tr><th>Billing tokens <span class="muted">(train, capped at the limit)</span></th><td class="num">${fmtInt(d.cost.billing_tokens)}</td></tr>
<tr><th>Trained tokens <span class="muted">(× epochs)</span></th><td class="num">${fmtInt(d.cost.billing_tokens * d.cost.n_epochs)}</td></tr>
<tr><th>Estimated cost</th><td class="num">${d.cost.estimated_usd === null ? '<span class="muted">n/a (no price for this model)</span>' : `${fmtUsd(d.cost.estimated_usd)} USD`}</td></tr>
</tbody>
</table>
</div>
</div>
</section>`;
}

async function tokensSection(d: ReportData): Promise<string> {
  const spec = tokensSpec(d.tokens, d.model.max_tokens_per_example);
  const chart = spec ? await renderChart(spec) : noData('No examples reached the files.');
  const limit = d.model.max_tokens_per_example;
  return `<section id="tokens" class="panel">
<h2>Tokens per example</h2>
<p class="lede">Histogram of per-example token totals in each split${limit === null ? ' (the model has no known per-example limit)' : `; the red rule marks the model's limit of ${fmtInt(limit)} tokens`}.</p>
${chart}
</section>`;
}

async function feedbackSection(fb: ReportData['feedback']): Promise<string> {
  const spec = feedbackSpec(fb);
  const chart = spec ? await renderChart(spec) : noData('No feedback values were recorded for this run.');
  const stats = (xs: readonly number[]) => {
    const f = finiteStats(xs);
    return f.count ? `${fmtInt(f.count)} values, mean ${fmtNum(f.mean, 2)}` : 'no values';
  };
  return `<section id="feedback" class="panel">
<h2>Feedback <code>${esc(fb.name)}</code>: before vs after</h2>
<p class="lede">Before: conversations entering the run (${stats(fb.before)}). After: conversations that reached the files (${stats(fb.after)}).</p>
${chart}
</section>`;
}

async function refusalsSection(r: ReportData['refusals']): Promise<string> {
  const body = r === null
    ? noData('This run did not rebalance refusals.')
    : `<p class="lede">Refusal rate before and after rebalancing: ${fmtInt(r.before.count)} (${fmtPct(r.before.rate)}) → ${fmtInt(r.after.count)} (${fmtPct(r.after.rate)}); target ${fmtPct(r.target_rate)}.</p>
${await renderChart(refusalsSpec(r))}`;
  return `<section id="refusals" class="panel">
<h2>Refusals</h2>
${body}
</section>`;
}

async function duplicatesAndPiiSection(clusters: ReportData['duplicateClusters'], pii: ReportData['pii']): Promise<string> {
  const kept = clusters.filter((c) => isPos(c.clusters) && isPos(c.size));
  const members = kept.reduce((a, c) => a + c.size * c.clusters, 0);
  const removable = kept.reduce((a, c) => a + Math.max(0, c.size - 1) * c.clusters, 0);
  const dupChart = kept.length ? await renderChart(duplicatesSpec(kept)) : noData('No duplicate clusters were found.');
  const piiEntries = Object.entries(pii).filter(([, n]) => isPos(n));
  const piiTotal = piiEntries.reduce((a, [, n]) => a + n, 0);
  const piiChart = piiEntries.length ? await renderChart(piiSpec(piiEntries)) : noData('No PII was redacted. (Conversations a redact_pii stage drops instead are in the funnel, as pii:<kind>.)');
  return `<section id="duplicates" class="panel">
<h2>Duplicates &amp; PII</h2>
<div class="two">
<div>
<h3>Duplicate clusters by size</h3>
<p class="lede">${kept.length ? `${fmtInt(kept.reduce((a, c) => a + c.clusters, 0))} clusters holding ${fmtInt(members)} conversations; ${fmtInt(removable)} are copies beyond the one kept.` : ''}</p>
${dupChart}
</div>
<div id="pii">
<h3>PII redactions by kind</h3>
<p class="lede">${piiEntries.length ? `${fmtInt(piiTotal)} redactions in total.` : ''}</p>
${piiChart}
</div>
</div>
</section>`;
}

function samplesSection(samples: ReportData['samples']): string {
  // Group by (stage, reason) in first-seen order so the page follows the order the caller chose.
  const groups = new Map<string, { stage: string; reason: string; items: ReportData['samples'][number][]; total: number }>();
  for (const s of samples) {
    const key = `${s.stage}\u0000${s.reason}`;
    let g = groups.get(key);
    if (!g) {
      if (groups.size >= MAX_SAMPLE_GROUPS) continue;
      g = { stage: s.stage, reason: s.reason, items: [], total: 0 };
      groups.set(key, g);
    }
    g.total++;
    if (g.items.length < MAX_SAMPLES_PER_REASON) g.items.push(s);
  }
  const blocks = [...groups.values()].map((g) => {
    const convs = g.items.map((s) => `<article class="conv">
<div class="conv-id">id <code>${esc(String(s.id))}</code></div>
${renderMessages(s.messages)}
</article>`).join('\n');
    const more = g.total > g.items.length ? ` <span class="muted">(showing ${g.items.length} of ${g.total})</span>` : '';
    return `<details>
<summary><code class="stage">${esc(g.stage)}</code> <code class="reason-code">${esc(g.reason)}</code> <span class="muted">${fmtInt(g.items.length)} sample${g.items.length === 1 ? '' : 's'}</span>${more}</summary>
${convs}
</details>`;
  });
  return `<section id="samples" class="panel">
<h2>Dropped conversations, by reason</h2>
${blocks.length ? `<p class="lede">A few conversations each stage dropped, per reason. Long messages are cut at ${fmtInt(MAX_MESSAGE_CHARS)} characters; long conversations show their first and last turns.</p>\n${blocks.join('\n')}` : noData('No dropped conversations were sampled.')}
</section>`;
}

function renderMessages(messages: readonly { role: string; content: string }[]): string {
  const msgs = Array.isArray(messages) ? messages : [];
  const head = msgs.length > MAX_MESSAGES_HEAD + MAX_MESSAGES_TAIL ? msgs.slice(0, MAX_MESSAGES_HEAD) : msgs;
  const tail = msgs.length > MAX_MESSAGES_HEAD + MAX_MESSAGES_TAIL ? msgs.slice(-MAX_MESSAGES_TAIL) : [];
  const one = (m: { role: string; content: string }) => {
    const role = String(m?.role ?? '');
    // Log content is not always a plain string (content parts, null beside tool calls): show it as JSON.
    const raw = typeof m?.content === 'string' ? m.content : m?.content == null ? '' : JSON.stringify(m.content);
    const { text, cut } = truncate(raw, MAX_MESSAGE_CHARS);
    const roleClass = /^(system|user|assistant|tool|function)$/.test(role) ? role : 'other';
    return `<div class="msg msg-${roleClass}"><span class="role">${esc(role)}</span><pre>${esc(text)}${cut ? `<span class="cut">… ${fmtInt(cut)} more characters</span>` : ''}</pre></div>`;
  };
  const omitted = msgs.length - head.length - tail.length;
  return head.map(one).join('')
    + (omitted > 0 ? `<div class="omitted">… ${fmtInt(omitted)} message${omitted === 1 ? '' : 's'} omitted …</div>` : '')
    + tail.map(one).join('');
}

function noData(text: string): string {
  return `<p class="nodata">${esc(text)}</p>`;
}

// ---------------------------------------------------------------------------------------------------
// Chart specs. Each takes already-aggregated rows; none sees a raw million-element array.

const CHART_CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelColor: '#4a5563', titleColor: '#2d3440', gridColor: '#e8ebef', domainColor: '#b8bfc9', tickColor: '#b8bfc9', labelFontSize: 11, titleFontSize: 11, titleFontWeight: 600 },
  legend: { labelColor: '#4a5563', titleColor: '#2d3440', labelFontSize: 11, titleFontSize: 11, labelLimit: 220 },
  title: { color: '#2d3440', fontSize: 12, fontWeight: 600, anchor: 'start' },
  header: { labelFontSize: 12, labelColor: '#2d3440', titleFontSize: 12 },
} as const;

function funnelSpec(stages: ReportData['stages']): TopLevelSpec {
  const labels = stages.map((s, i) => clip(`${i + 1}. ${s.name}`));
  // A chart with a colour per reason becomes unreadable past a handful: keep the biggest, fold the rest.
  const totals = new Map<string, number>();
  for (const s of stages) for (const [r, n] of sortedReasons(s.dropped)) totals.set(r, (totals.get(r) ?? 0) + n);
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0])).slice(0, MAX_CHART_REASONS).map(([r]) => r);
  const OTHER = 'other reasons';
  const UNRECORDED = 'dropped, no reason recorded';
  const rows: { stage: string; part: string; count: number; order: number }[] = [];
  stages.forEach((s, i) => {
    rows.push({ stage: labels[i], part: 'kept', count: Math.max(0, s.out), order: 0 });
    let other = 0;
    let recorded = 0;
    for (const [r, n] of sortedReasons(s.dropped)) {
      recorded += n;
      const k = top.indexOf(r);
      if (k >= 0) rows.push({ stage: labels[i], part: clip(r), count: n, order: k + 1 });
      else other += n;
    }
    if (other > 0) rows.push({ stage: labels[i], part: OTHER, count: other, order: top.length + 1 });
    const gap = s.in - s.out - recorded;
    if (gap > 0) rows.push({ stage: labels[i], part: UNRECORDED, count: gap, order: top.length + 2 });
  });
  const parts = ['kept', ...top.map(clip)];
  if (rows.some((r) => r.part === OTHER)) parts.push(OTHER);
  if (rows.some((r) => r.part === UNRECORDED)) parts.push(UNRECORDED);
  const colors = parts.map((p, i) => (i === 0 ? KEPT_COLOR : p === UNRECORDED ? '#6b7280' : REASON_COLORS[(i - 1) % REASON_COLORS.length]));
  const maxIn = Math.max(1, ...stages.map((s) => Math.max(s.in, s.out)));
  const ends = stages.map((s, i) => ({ stage: labels[i], total: Math.max(s.in, s.out), label: `${fmtInt(s.out)} of ${fmtInt(s.in)} kept` }));
  return {
    config: CHART_CONFIG,
    width: CHART_WIDTH - 200,
    height: { step: 30 },
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', cornerRadiusEnd: 0 },
        encoding: {
          y: { field: 'stage', type: 'nominal', sort: labels, title: null, axis: { labelLimit: 240 } },
          x: { field: 'count', type: 'quantitative', stack: 'zero', title: 'conversations', scale: { domain: [0, maxIn * 1.3] }, axis: COUNT_AXIS },
          color: { field: 'part', type: 'nominal', title: null, scale: { domain: parts, range: colors }, legend: { orient: 'bottom', columns: 3, symbolType: 'square' } },
          order: { field: 'order', type: 'quantitative' },
        },
      },
      {
        data: { values: ends },
        mark: { type: 'text', align: 'left', dx: 6, fontSize: 11, color: '#4a5563' },
        encoding: {
          y: { field: 'stage', type: 'nominal', sort: labels },
          x: { field: 'total', type: 'quantitative' },
          text: { field: 'label' },
        },
      },
    ],
  } as TopLevelSpec;
}

function tokensSpec(tokens: ReportData['tokens'], limit: number | null): TopLevelSpec | null {
  const splits = (['train', 'test'] as const).map((name) => ({ name, values: tokens[name] ?? [] }));
  const withData = splits.map((s) => ({ ...s, stats: finiteStats(s.values) })).filter((s) => s.stats.count > 0);
  if (withData.length === 0) return null;
  const lo = Math.min(...withData.map((s) => s.stats.min));
  const hi = Math.max(...withData.map((s) => s.stats.max));
  const hasLimit = limit !== null && Number.isFinite(limit) && limit > 0;
  // When the limit is far beyond the data (65,536 against a few thousand), a linear axis reaching the limit
  // would squash every bar against the left edge; a log axis keeps both the shape and the limit visible.
  const farLimit = hasLimit && limit! > 4 * hi && lo >= 1;
  // Even a log axis leaves a narrow spread far below the limit a sliver (21 examples of 58–74 tokens against
  // 65,536 were hairlines): when the data would span under a quarter of it, the axis is the data's own and the
  // limit is stated in the title instead of drawn.
  const drawLimit = hasLimit && (!farLimit || Math.log(hi / lo) / Math.log((limit! * 1.25) / lo) >= 0.25);
  const useLog = farLimit && drawLimit;
  const edges = useLog ? logEdges(lo, hi, 40) : linearEdges(lo, hi, MAX_HIST_BINS);
  const domainHi = Math.max(edges[edges.length - 1], drawLimit ? limit! * (useLog ? 1.25 : 1.03) : 0);
  const domain = useLog || (hasLimit && !drawLimit) ? [edges[0], domainHi] : [Math.min(0, edges[0]), domainHi];
  const panels = withData.map((s) => {
    const counts = countIntoEdges(s.values, edges);
    const rows = counts.map((n, i) => ({ start: edges[i], end: edges[i + 1], n })).filter((r) => r.n > 0);
    const layers: unknown[] = [
      {
        data: { values: rows },
        mark: { type: 'bar', color: s.name === 'train' ? KEPT_COLOR : '#54a24b', binSpacing: 0, stroke: 'white', strokeWidth: 0.5 },
        encoding: {
          x: { field: 'start', type: 'quantitative', title: 'tokens per example', scale: { type: useLog ? 'log' : 'linear', domain, nice: false }, axis: useLog ? { format: '~s' } : COUNT_AXIS },
          x2: { field: 'end' },
          // With a ranged x, vega-lite would draw y as a 5px tick; y2 at zero makes it a bar.
          y: { field: 'n', type: 'quantitative', title: 'examples', axis: COUNT_AXIS },
          y2: { datum: 0 },
        },
      },
    ];
    if (drawLimit) {
      layers.push(
        { data: { values: [{ limit }] }, mark: { type: 'rule', color: LIMIT_COLOR, strokeDash: [5, 3], strokeWidth: 1.5 }, encoding: { x: { field: 'limit', type: 'quantitative' } } },
        { data: { values: [{ limit, label: `limit ${fmtInt(limit!)}` }] }, mark: { type: 'text', color: LIMIT_COLOR, align: 'right', baseline: 'top', dx: -4, y: 2, fontSize: 11 }, encoding: { x: { field: 'limit', type: 'quantitative' }, text: { field: 'label' } } },
      );
    }
    return {
      title: `${s.name}: ${fmtInt(s.stats.count)} examples, median ${fmtInt(median(s.values))}, max ${fmtInt(s.stats.max)}${useLog ? ' (log scale)' : ''}${hasLimit && !drawLimit ? `; limit ${fmtInt(limit!)}, far beyond (not drawn)` : ''}`,
      width: CHART_WIDTH,
      height: 130,
      layer: layers,
    };
  });
  return { config: CHART_CONFIG, vconcat: panels, spacing: 24, resolve: { scale: { x: 'shared', y: 'independent' } } } as TopLevelSpec;
}

function feedbackSpec(fb: ReportData['feedback']): TopLevelSpec | null {
  const before = finiteStats(fb.before);
  const after = finiteStats(fb.after);
  if (before.count === 0 && after.count === 0) return null;
  const distinct = new Set<number>();
  for (const xs of [fb.before, fb.after]) {
    for (const x of xs) {
      if (!Number.isFinite(x)) continue;
      distinct.add(x);
      if (distinct.size > MAX_FEEDBACK_CATEGORIES) break;
    }
  }
  let categories: string[];
  let toCategory: (x: number) => number;
  if (distinct.size <= MAX_FEEDBACK_CATEGORIES) {
    // Scores and thumbs are a handful of discrete values: one bar per value reads better than bins.
    const values = [...distinct].sort((a, b) => a - b);
    const index = new Map(values.map((v, i) => [v, i]));
    categories = values.map((v) => fmtNum(v, 3));
    toCategory = (x) => index.get(x)!;
  } else {
    const edges = linearEdges(Math.min(before.min, after.min), Math.max(before.max, after.max), MAX_FEEDBACK_CATEGORIES);
    categories = edges.slice(0, -1).map((e, i) => `${fmtNum(e, 3)}–${fmtNum(edges[i + 1], 3)}`);
    const last = categories.length - 1;
    toCategory = (x) => Math.min(last, Math.max(0, binIndex(x, edges)));
  }
  const rows: { value: string; phase: string; n: number; share: number }[] = [];
  for (const [phase, xs, st] of [['before', fb.before, before], ['after', fb.after, after]] as const) {
    const counts = new Array<number>(categories.length).fill(0);
    for (const x of xs) if (Number.isFinite(x)) counts[toCategory(x)]++;
    counts.forEach((n, i) => rows.push({ value: categories[i], phase, n, share: st.count ? n / st.count : 0 }));
  }
  return {
    config: CHART_CONFIG,
    data: { values: rows },
    width: CHART_WIDTH,
    height: 200,
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'value', type: 'ordinal', sort: categories, title: fb.name, axis: { labelAngle: categories.length > 8 ? -40 : 0 } },
      xOffset: { field: 'phase', sort: ['before', 'after'] },
      y: { field: 'n', type: 'quantitative', title: 'conversations', axis: COUNT_AXIS },
      color: { field: 'phase', title: null, sort: ['before', 'after'], scale: { domain: ['before', 'after'], range: [BEFORE_COLOR, AFTER_COLOR] }, legend: { orient: 'top' } },
    },
  } as TopLevelSpec;
}

function refusalsSpec(r: NonNullable<ReportData['refusals']>): TopLevelSpec {
  const rows = [
    { phase: 'before', rate: r.before.rate, label: `${fmtPct(r.before.rate)} (${fmtInt(r.before.count)})` },
    { phase: 'after', rate: r.after.rate, label: `${fmtPct(r.after.rate)} (${fmtInt(r.after.count)})` },
  ];
  const top = Math.max(r.before.rate, r.after.rate, r.target_rate, 0.01) * 1.2;
  return {
    config: CHART_CONFIG,
    width: 260,
    height: 200,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', width: { band: 0.6 } },
        encoding: {
          x: { field: 'phase', type: 'nominal', sort: ['before', 'after'], title: null, axis: { labelAngle: 0 } },
          y: { field: 'rate', type: 'quantitative', title: 'refusal rate', scale: { domain: [0, Math.min(1, top)] }, axis: { format: '.0%' } },
          color: { field: 'phase', legend: null, scale: { domain: ['before', 'after'], range: [BEFORE_COLOR, AFTER_COLOR] } },
        },
      },
      {
        data: { values: rows },
        mark: { type: 'text', dy: -6, baseline: 'bottom', fontSize: 11, color: '#2d3440' },
        encoding: { x: { field: 'phase', type: 'nominal', sort: ['before', 'after'] }, y: { field: 'rate', type: 'quantitative' }, text: { field: 'label' } },
      },
      {
        data: { values: [{ target: r.target_rate }] },
        mark: { type: 'rule', color: LIMIT_COLOR, strokeDash: [5, 3], strokeWidth: 1.5 },
        encoding: { y: { field: 'target', type: 'quantitative' } },
      },
      {
        data: { values: [{ target: r.target_rate, label: `target ${fmtPct(r.target_rate)}` }] },
        // Right of the plot, where no bar label can collide with it.
        mark: { type: 'text', color: LIMIT_COLOR, align: 'left', baseline: 'middle', dx: 6, x: 'width', fontSize: 11 },
        encoding: { y: { field: 'target', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
  } as TopLevelSpec;
}

function duplicatesSpec(clusters: ReportData['duplicateClusters']): TopLevelSpec {
  // Exact sizes while there are few of them; past that, ranges that widen with size (a long tail of
  // one-off sizes such as 137 or 412 says less than "101–200").
  const exact = new Set(clusters.map((c) => c.size)).size <= 25;
  const ranges: [number, number][] = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 10], [11, 20], [21, 50], [51, 100], [101, 200], [201, 500], [501, 1000], [1001, Infinity]];
  const byLabel = new Map<string, { key: number; clusters: number }>();
  for (const c of clusters) {
    let label: string;
    let key: number;
    if (exact) {
      label = fmtInt(c.size);
      key = c.size;
    } else {
      const k = ranges.findIndex(([a, b]) => c.size >= a && c.size <= b);
      const [a, b] = ranges[k];
      label = a === b ? fmtInt(a) : b === Infinity ? `${fmtInt(a)}+` : `${fmtInt(a)}–${fmtInt(b)}`;
      key = a;
    }
    const e = byLabel.get(label) ?? { key, clusters: 0 };
    e.clusters += c.clusters;
    byLabel.set(label, e);
  }
  const rows = [...byLabel.entries()].sort((a, b) => a[1].key - b[1].key).map(([size, e]) => ({ size, clusters: e.clusters }));
  return {
    config: CHART_CONFIG,
    data: { values: rows },
    // Range labels ("101–200") need about twice the room of exact sizes.
    width: { step: exact ? (rows.length > 12 ? 24 : 34) : 52 },
    height: 200,
    layer: [
      {
        mark: { type: 'bar', color: '#b279a2' },
        encoding: {
          x: { field: 'size', type: 'ordinal', sort: rows.map((r) => r.size), title: 'cluster size (conversations)', axis: { labelAngle: 0 } },
          y: { field: 'clusters', type: 'quantitative', title: 'clusters', axis: COUNT_AXIS },
        },
      },
      {
        mark: { type: 'text', dy: -4, baseline: 'bottom', fontSize: 10, color: '#4a5563' },
        encoding: { x: { field: 'size', type: 'ordinal', sort: rows.map((r) => r.size) }, y: { field: 'clusters', type: 'quantitative' }, text: { field: 'clusters', format: ',' } },
      },
    ],
  } as TopLevelSpec;
}

function piiSpec(entries: [string, number][]): TopLevelSpec {
  const rows = entries.sort((a, b) => b[1] - a[1] || cmp(a[0], b[0])).map(([kind, n]) => ({ kind: clip(kind), n }));
  const max = Math.max(...rows.map((r) => r.n));
  return {
    config: CHART_CONFIG,
    data: { values: rows },
    width: 320,
    height: { step: 26 },
    layer: [
      {
        mark: { type: 'bar', color: '#f58518' },
        encoding: {
          y: { field: 'kind', type: 'nominal', sort: rows.map((r) => r.kind), title: null },
          x: { field: 'n', type: 'quantitative', title: 'redactions', scale: { domain: [0, max * 1.2] }, axis: COUNT_AXIS },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11, color: '#4a5563' },
        encoding: { y: { field: 'kind', type: 'nominal', sort: rows.map((r) => r.kind) }, x: { field: 'n', type: 'quantitative' }, text: { field: 'n', format: ',' } },
      },
    ],
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// Rendering and the SVG safety check

async function renderChart(spec: TopLevelSpec): Promise<string> {
  const quiet = vega.logger(vega.Error);
  const compiled = vl.compile(spec, { logger: quiet }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  try {
    // Coordinates to 3 decimals: vega writes full doubles (`10.512842397435051`), whose digit runs look like
    // card numbers to a PII scan of the outputs, and weigh a third of the page.
    const svg = (await view.toSVG()).replace(/(\d\.\d{3})\d+/g, '$1');
    // xmlns attributes are meaningless inside HTML (the parser puts <svg> in the SVG namespace) and would
    // be the only URL-looking strings in the page.
    // vega already sets class="marks"; a second class attribute would be ignored by the HTML parser.
    const inline = svg.replace(/^<svg\b([^>]*)>/, (_m, attrs: string) => {
      const kept = attrs.replace(/\s+xmlns(:\w+)?="[^"]*"/g, '').replace(/\s+class="[^"]*"/, '');
      return `<svg class="marks chart"${kept}>`;
    });
    const problem = unsafeSvg(inline);
    if (problem) return noData(`Chart omitted: its SVG failed the safety check (${problem}).`);
    return `<figure class="chart-wrap">${inline}</figure>`;
  } finally {
    view.finalize();
  }
}

const SVG_TAGS = new Set(['svg', 'g', 'path', 'rect', 'line', 'text', 'tspan', 'defs', 'clipPath', 'circle', 'ellipse', 'polygon', 'polyline', 'linearGradient', 'radialGradient', 'stop', 'title', 'desc']);

/**
 * Why not trust vega blindly: the SVG is inlined into a page an analyst opens, with log text inside.
 * Every `<` must open an allowlisted tag, no attribute may be an event handler or a link, and `url(…)`
 * may only point inside the document. Returns a description of the first problem, or null.
 */
export function unsafeSvg(svg: string): string | null {
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/g;
  let tags = 0;
  for (const m of svg.matchAll(tag)) {
    tags++;
    const name = m[2];
    if (!SVG_TAGS.has(name)) return `element <${name}>`;
    for (const a of m[3].matchAll(/([^\s=/]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)/g)) {
      const attr = a[1].toLowerCase();
      const value = a[2].replace(/^["']|["']$/g, '');
      if (attr.startsWith('on')) return `attribute ${attr}`;
      if (attr === 'href' || attr.endsWith(':href') || attr === 'src') return `attribute ${attr}`;
      if (/url\s*\(/i.test(value) && !/^url\(#[\w-]+\)$/.test(value.trim())) return `url() in ${attr}`;
    }
  }
  const opens = svg.split('<').length - 1;
  if (opens !== tags) return 'unescaped "<"';
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Binning and statistics over plain arrays (single passes; no spreading of large arrays).

interface Stats { count: number; min: number; max: number; mean: number }

function finiteStats(xs: readonly number[]): Stats {
  let count = 0;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const x of xs ?? []) {
    if (!Number.isFinite(x)) continue;
    count++;
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { count, min, max, mean: count ? sum / count : NaN };
}

function median(xs: readonly number[]): number {
  const finite = Float64Array.from(xs.filter(Number.isFinite)).sort();
  if (finite.length === 0) return NaN;
  const m = finite.length >> 1;
  return finite.length % 2 ? finite[m] : (finite[m - 1] + finite[m]) / 2;
}

/** Bin edges at a "nice" step (1, 2, 2.5, 5 × 10^k), at most maxBins bins, covering [lo, hi]. */
export function linearEdges(lo: number, hi: number, maxBins: number): number[] {
  if (!(hi > lo)) return [lo, lo + 1];
  const span = hi - lo;
  let mag = 10 ** Math.floor(Math.log10(span / maxBins));
  const steps = [1, 2, 2.5, 5];
  for (;;) {
    for (const s of steps) {
      const step = s * mag;
      const start = Math.floor(lo / step) * step;
      const bins = Math.floor((hi - start) / step) + 1;
      if (bins <= maxBins) return Array.from({ length: bins + 1 }, (_, i) => roundTo(start + i * step, step));
    }
    mag *= 10;
  }
}

function logEdges(lo: number, hi: number, bins: number): number[] {
  if (!(hi > lo)) return [lo, lo + 1];
  const a = Math.log(lo);
  const b = Math.log(hi * 1.0001);
  return Array.from({ length: bins + 1 }, (_, i) => Math.exp(a + ((b - a) * i) / bins));
}

function binIndex(x: number, edges: readonly number[]): number {
  // Binary search: the last edge ≤ x. Edges are few, values are many.
  let lo = 0;
  let hi = edges.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (edges[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Counts per bin [edges[i], edges[i+1]); the last bin also takes values equal to its upper edge. */
export function countIntoEdges(xs: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (const x of xs) {
    if (!Number.isFinite(x)) continue;
    counts[Math.min(counts.length - 1, Math.max(0, binIndex(x, edges)))]++;
  }
  return counts;
}

function roundTo(x: number, step: number): number {
  // Keeps 0.1 + 0.2-style noise out of the axis labels.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  return Number(x.toFixed(Math.min(decimals, 12)));
}

// ---------------------------------------------------------------------------------------------------
// Text helpers

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** HTML-escapes text for use in element content and quoted attribute values alike. */
/** Text for HTML: markup characters escaped, control characters as pictures (controlPictures). */
export function esc(value: unknown): string {
  return controlPictures(String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!));
}

/**
 * Control characters other than tab and line breaks as their Unicode control pictures (NUL as ␀): written raw
 * they are HTML parse errors (a NUL made the file "binary" to grep), and as character references they would show
 * nothing, or U+FFFD. Also applied to the sections whole: the charts' SVG carries labels (stage names, reasons)
 * into its attributes with the control characters vega leaves in them. Markup itself never holds one.
 */
function controlPictures(s: string): string {
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => String.fromCharCode(c === '\u007f' ? 0x2421 : 0x2400 + c.charCodeAt(0)));
}

function truncate(s: string, max: number): { text: string; cut: number } {
  if (s.length <= max) return { text: s, cut: 0 };
  let end = max;
  // Never split a surrogate pair: half an emoji would render as a replacement character.
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return { text: s.slice(0, end), cut: s.length - end };
}

function clip(s: string): string {
  return truncate(String(s), MAX_LABEL_CHARS).text + (String(s).length > MAX_LABEL_CHARS ? '…' : '');
}

/** Drop reasons that carry an id (`duplicate_of:<kept id>`) are one reason per kept conversation: fold them. */
function sortedReasons(dropped: Readonly<Record<string, number>>): [string, number][] {
  const folded = new Map<string, number>();
  for (const [reason, n] of Object.entries(dropped ?? {})) {
    if (!isPos(n)) continue;
    const key = reason.startsWith('duplicate_of:') ? 'duplicate_of' : reason;
    folded.set(key, (folded.get(key) ?? 0) + n);
  }
  return [...folded.entries()].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isPos(n: number): boolean {
  return typeof n === 'number' && Number.isFinite(n) && n > 0;
}

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function fmtInt(n: number): string {
  return Number.isFinite(n) ? intFormat.format(n) : '—';
}

function fmtNum(n: number, digits: number): string {
  return Number.isFinite(n) ? new Intl.NumberFormat('en-US', { maximumFractionDigits: digits }).format(n) : '—';
}

function fmtPct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(x > 0 && x < 0.001 ? 2 : 1)}%` : '—';
}

function fmtUsd(x: number): string {
  return Number.isFinite(x) ? `$${x.toFixed(x < 1 ? 4 : 2)}` : '—';
}

function durationNote(start: string, end: string): string {
  const ms = Date.parse(end) - Date.parse(start);
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = ms / 1000;
  const text = s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return ` <span class="muted">(${text})</span>`;
}

// ---------------------------------------------------------------------------------------------------

const CSS = `
:root{--fg:#1f2630;--muted:#6b7480;--line:#e3e7ec;--bg:#f5f7fa;--panel:#fff;--accent:#3b6ea8;--warn-bg:#fff8e6;--warn-line:#f0c96a}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 ${FONT}}
.wrap{max-width:1120px;margin:0 auto;padding:0 24px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.page-header{background:#1f2a3a;color:#eef2f7;padding:28px 0 0;margin-bottom:24px}
.page-header .eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:11px;color:#9fb1c8}
.page-header h1{margin:4px 0 14px;font-size:26px;font-weight:650;word-break:break-word}
.page-header code{color:#fff;background:rgba(255,255,255,.08);padding:1px 5px;border-radius:4px;word-break:break-all}
.page-header .muted{color:#9fb1c8}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0 0 18px}
.meta div{display:flex;gap:8px;align-items:baseline}
.meta dt{color:#9fb1c8;font-size:12px}
.meta dd{margin:0}
.toc{display:flex;flex-wrap:wrap;gap:2px;border-top:1px solid rgba(255,255,255,.1);padding:6px 0}
.toc a{color:#cfe0f5;text-decoration:none;padding:6px 10px;border-radius:4px;font-size:13px}
.toc a:hover{background:rgba(255,255,255,.08)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-bottom:20px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card-label{color:var(--muted);font-size:12px}
.card-value{font-size:22px;overflow-wrap:anywhere;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px}
.card-note{color:var(--muted);font-size:12px;min-height:1.5em}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin-bottom:20px}
.panel h2{margin:0 0 6px;font-size:18px;font-weight:650}
.panel h3{margin:0 0 6px;font-size:14px;font-weight:650}
.panel.warn{background:var(--warn-bg);border-color:var(--warn-line)}
.panel.warn ul{margin:6px 0 0;padding-left:20px}
.panel.warn li{word-break:break-word}
.lede{color:var(--muted);margin:0 0 12px;max-width:80ch}
.nodata{color:var(--muted);font-style:italic;background:var(--bg);border:1px dashed var(--line);border-radius:6px;padding:14px;margin:8px 0}
.two{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px 28px}
.chart-wrap{margin:6px 0 12px;overflow-x:auto}
svg.chart{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;margin-top:8px;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line)}
td.num,th.num{text-align:right;white-space:nowrap}
table.kv th{font-weight:500;width:60%}
.reason{display:inline-block;margin:0 10px 2px 0;white-space:nowrap}
.reason code,.reason-code{background:#fdecec;color:#9b2c2c;padding:1px 5px;border-radius:4px;word-break:break-all}
code.stage{background:#e8eff8;color:#27476e;padding:1px 5px;border-radius:4px}
.muted{color:var(--muted)}
details{border:1px solid var(--line);border-radius:6px;margin:8px 0;background:#fcfdfe}
details[open]{background:#fff}
summary{cursor:pointer;padding:9px 12px;list-style-position:inside;word-break:break-word}
summary:hover{background:var(--bg)}
.conv{border-top:1px solid var(--line);padding:10px 14px}
.conv-id{color:var(--muted);font-size:12px;margin-bottom:6px;word-break:break-all}
.msg{display:grid;grid-template-columns:82px 1fr;gap:10px;margin:4px 0}
.msg .role{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);padding-top:5px;text-align:right;word-break:break-all}
.msg pre{margin:0;white-space:pre-wrap;word-break:break-word;overflow-wrap:anywhere;background:var(--bg);border-radius:6px;padding:6px 10px;border-left:3px solid #c9d1db}
.msg-user pre{border-left-color:#8fb0d6}
.msg-assistant pre{border-left-color:#7cbf8e;background:#f4faf5}
.msg-system pre{border-left-color:#b9a3d0;background:#f8f5fb}
.msg-tool pre,.msg-function pre{border-left-color:#d6b36a}
.cut,.omitted{color:var(--muted);font-style:italic}
.omitted{margin:4px 0 4px 92px;font-size:12px}
footer{padding:8px 24px 40px;font-size:12px}
@media print{body{background:#fff}.page-header{background:#fff;color:#000}.toc{display:none}details{break-inside:avoid}}
`;
