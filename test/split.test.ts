import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runConfigFile } from '../pipeline/runner.js';
import { jsonl, tempDir } from './support/tmp.js';
import { chat, curate, prng, readOutputs, words, type Curated } from './support/pipeline.js';
import { LINK_CAP } from '../stages/split.js';
import { seededUnit } from '../pipeline/normalize.js';
import Database from 'better-sqlite3';

const root = tempDir('logcurate-split-');
const rand = prng(777);
const prompt = (): string => words(rand, 6).join(' ');
const REFUSAL = "I'm sorry, but I can't help with that.";

const EMIT = { dir: 'out', model: 'gpt-4o-mini-2024-07-18', min_examples: 0, report: false };

/** Where each id landed. */
const splitOf = (r: Curated): Map<string, string> => new Map(r.lineage.map((row) => [row.id, row.status]));

function assertNoStraddle(r: Curated, keyOf: (id: string) => string | undefined): number {
  const seen = new Map<string, string>();
  let groups = 0;
  for (const row of r.lineage) {
    if (row.status === 'dropped') continue;
    const key = keyOf(row.id);
    if (key === undefined) continue;
    const prev = seen.get(key);
    if (prev === undefined) {
      seen.set(key, row.status);
      groups++;
    } else expect(row.status, `${row.id} of group ${key}`).toBe(prev);
  }
  return groups;
}

describe('split: stable', () => {
  it('a conversation keeps its split when more logs arrive on a later night', async () => {
    const dir = join(root, 'nights');
    mkdirSync(dir);
    const night1 = Array.from({ length: 300 }, (_, k) => chat(`a${k}`, prompt(), `answer ${k}`, { user_id: `u${k % 60}` }));
    // Night two: new conversations, some from the same users, some repeating night one's prompts word for word.
    const night2 = [
      ...Array.from({ length: 250 }, (_, k) => chat(`b${k}`, prompt(), `answer b${k}`, { user_id: `u${k % 60}` })),
      ...Array.from({ length: 50 }, (_, k) => chat(`c${k}`, (night1[k * 6]!.messages as { content: string }[])[0]!.content.toUpperCase(), 'again', { user_id: `u${(k * 6) % 60}` })),
    ];
    writeFileSync(join(dir, 'night-1.jsonl'), jsonl(night1));
    const db = join(dir, 'store.db');
    for (const groupBy of ['conversation', 'user_id']) {
      writeFileSync(
        join(dir, `${groupBy}.json`),
        JSON.stringify({ name: 'nightly', seed: 3, inputs: ['night-*.jsonl'], stages: [{ split: { test_fraction: 0.2, group_by: groupBy } }, { emit: EMIT }] }),
      );
    }
    const run = async (groupBy: string, night: number) => {
      const out = join(dir, `out-${groupBy}-${night}`);
      return readOutputs(out, await runConfigFile(join(dir, `${groupBy}.json`), { db, out }));
    };
    const first = { conversation: await run('conversation', 1), user_id: await run('user_id', 1) };
    writeFileSync(join(dir, 'night-2.jsonl'), jsonl(night2));
    const second = { conversation: await run('conversation', 2), user_id: await run('user_id', 2) };
    for (const g of ['conversation', 'user_id'] as const) {
      const before = splitOf(first[g]);
      const after = splitOf(second[g]);
      expect(before.size).toBe(300);
      expect(after.size).toBe(600);
      const moved = [...before].filter(([id, s]) => after.get(id) !== s).map(([id]) => id);
      expect(moved, `${g}: moved`).toEqual([]);
      // Roughly the fraction asked for (a hash decides, not a count).
      const nTest = [...after.values()].filter((s) => s === 'test').length;
      expect(nTest, g).toBeGreaterThan(600 * 0.1);
      expect(nTest, g).toBeLessThan(600 * 0.3);
    }
    // A repeated prompt lands where the original did.
    for (let k = 0; k < 50; k++) expect(splitOf(second.conversation).get(`c${k}`)).toBe(splitOf(second.conversation).get(`a${k * 6}`));
  });

  it('the seed decides; the same seed gives the same split', async () => {
    const logs = Array.from({ length: 200 }, (_, k) => chat(`s${k}`, prompt(), 'a'));
    const a = await curate(root, { logs, seed: 1, stages: [{ split: { test_fraction: 0.3 } }] });
    const b = await curate(root, { logs, seed: 1, stages: [{ split: { test_fraction: 0.3 } }] });
    const c = await curate(root, { logs, seed: 2, stages: [{ split: { test_fraction: 0.3 } }] });
    expect(a.testIds).toEqual(b.testIds);
    expect(new Set(c.testIds)).not.toEqual(new Set(a.testIds));
    expect(a.manifest.stages.find((s) => s.name === 'split')).toEqual({ name: 'split', in: 200, out: 200, dropped: {} });
  });

  it('test_fraction 0 puts everything in train', async () => {
    const logs = Array.from({ length: 30 }, (_, k) => chat(`z${k}`, prompt(), 'a'));
    const r = await curate(root, { logs, stages: [{ split: { test_fraction: 0 } }] });
    expect(r.test).toHaveLength(0);
    expect(r.train).toHaveLength(30);
  });
});

describe('split: exact', () => {
  const logs = Array.from({ length: 200 }, (_, k) => chat(`e${k}`, prompt(), 'a'));

  it('hits test_size and test_fraction exactly', async () => {
    const size = await curate(root, { logs, stages: [{ split: { method: 'exact', test_size: 37 } }] });
    expect(size.test).toHaveLength(37);
    expect(size.train).toHaveLength(163);
    const frac = await curate(root, { logs, stages: [{ split: { method: 'exact', test_fraction: 0.25 } }] });
    expect(frac.test).toHaveLength(50);
    const odd = await curate(root, { logs: logs.slice(0, 77), stages: [{ split: { method: 'exact', test_fraction: 0.1 } }] });
    expect(odd.test).toHaveLength(8);
  });

  it('with groups larger than what is missing, takes the one that overshoots least when that comes nearer', async () => {
    // 30 users of 18 conversations each, kept together by group_by.
    const grouped = Array.from({ length: 540 }, (_, k) => chat(`g${k}`, prompt(), 'a', { user_id: `u${k % 30}` }));
    const count = async (p: Record<string, unknown>): Promise<number> =>
      (await curate(root, { logs: grouped, stages: [{ split: { method: 'exact', group_by: 'user_id', ...p } }], emit: { min_examples: 0 } })).test.length;
    // 12 asked: one group of 18 is 6 off, none is 12 off (it used to give none, an empty test set).
    expect(await count({ test_size: 12 })).toBe(18);
    // 30: one group leaves 12 missing; a second overshoots by 6.
    expect(await count({ test_size: 30 })).toBe(36);
    // 8: a group would be 10 off, more than stopping short: none.
    expect(await count({ test_size: 8 })).toBe(0);
    expect(await count({ test_size: 36 })).toBe(36);
  });

  it('counts only what is still alive when split runs', async () => {
    const withDrops = [...logs, ...Array.from({ length: 40 }, (_, k) => ({ ...chat(`bad${k}`, prompt(), 'a'), status: 'error' }))];
    const r = await curate(root, { logs: withDrops, stages: [{ filter: {} }, { split: { method: 'exact', test_fraction: 0.1 } }] });
    expect(r.test).toHaveLength(20);
  });

  it('stratify_by refusal keeps the refusal share in both splits', async () => {
    const strat = [
      ...Array.from({ length: 160 }, (_, k) => chat(`ok${k}`, prompt(), 'Sure, here you go.')),
      ...Array.from({ length: 40 }, (_, k) => chat(`no${k}`, prompt(), REFUSAL)),
    ];
    const r = await curate(root, { logs: strat, stages: [{ split: { method: 'exact', test_fraction: 0.25, stratify_by: 'refusal' } }] });
    expect(r.testIds).toHaveLength(50);
    expect(r.testIds.filter((id) => id.startsWith('no'))).toHaveLength(10);
    expect(r.testIds.filter((id) => id.startsWith('ok'))).toHaveLength(40);
  });

  it('stratify_by refusal uses the verdicts of an earlier rebalance_refusals, its own detector settings included', async () => {
    // Refusals by a tag only: the text reads as a helpful answer, which the default detector would pass.
    const strat = [
      ...Array.from({ length: 30 }, (_, k) => chat(`ok${k}`, prompt(), 'Sure, here you go.')),
      ...Array.from({ length: 10 }, (_, k) => chat(`tagged${k}`, prompt(), 'Sure, here you go.', { tags: { refused: true } })),
    ];
    const r = await curate(root, {
      logs: strat,
      stages: [{ rebalance_refusals: { target_rate: 1, tag: 'refused' } }, { split: { method: 'exact', test_size: 8, stratify_by: 'refusal' } }],
    });
    expect(r.manifest.refusals!.before.count).toBe(10);
    expect(r.testIds.filter((id) => id.startsWith('tagged'))).toHaveLength(2);
    expect(r.testIds.filter((id) => id.startsWith('ok'))).toHaveLength(6);
    expect(r.manifest.warnings.join('\n')).not.toMatch(/stratify_by/);
  });

  it('warns that stratify_by does nothing under method: stable', async () => {
    const r = await curate(root, { logs: logs.slice(0, 40), stages: [{ split: { test_fraction: 0.2, stratify_by: 'refusal' } }] });
    expect(r.manifest.warnings).toContain(
      'split: stratify_by refusal has no effect with method: stable (each group\'s side follows its own hash, so each stratum gets test_fraction only on average); method: exact stratifies',
    );
  });

  it('warns that test_size under method: stable is a share, and when the test set is empty however small the run', async () => {
    const r = await curate(root, { logs: logs.slice(0, 40), stages: [{ split: { test_size: 8 } }] });
    expect(r.manifest.warnings.join('\n')).toContain('split: test_size with method: stable is taken as a share (8 of 40 now)');
    // Everything linked into one group by a shared tag: the test set cannot be anything but empty or everything.
    const one = logs.slice(0, 20).map((c) => ({ ...c, tags: { org: 'acme' } }));
    const seeds = [0, 1, 2, 3, 4, 5, 6, 7];
    let empty = 0;
    for (const seed of seeds) {
      const e = await curate(root, { logs: one, seed, stages: [{ split: { test_fraction: 0.5, group_by: 'tags.org', method: 'exact' } }] });
      if (e.testIds.length === 0) {
        empty++;
        expect(e.manifest.warnings).toContain('split: the test set is empty (20 conversations, the largest group holds 20)');
      } else expect(e.manifest.warnings.join('\n')).not.toMatch(/test set is empty/);
    }
    expect(empty).toBeGreaterThan(0);
  });

  it('stratify_by tags.<key> is proportional per value', async () => {
    const langs = [...Array(120).fill('en'), ...Array(60).fill('fr'), ...Array(20).fill('de')] as string[];
    const strat = langs.map((lang, k) => chat(`l${k}`, prompt(), 'a', { tags: { lang } }));
    const r = await curate(root, { logs: strat, stages: [{ split: { method: 'exact', test_fraction: 0.1, stratify_by: 'tags.lang' } }] });
    const langOf = new Map(strat.map((c) => [c.id as string, (c.tags as { lang: string }).lang]));
    const count = (lang: string) => r.testIds.filter((id) => langOf.get(id) === lang).length;
    expect([count('en'), count('fr'), count('de')]).toEqual([12, 6, 2]);
  });
});

describe('split: groups and prompts never straddle', () => {
  const logs = Array.from({ length: 240 }, (_, k) =>
    chat(`g${k}`, prompt(), 'a', { user_id: `user-${k % 40}`, session_id: `sess-${k % 30}`, tags: { account: `acct-${k % 25}` } }),
  );
  const meta = new Map(logs.map((c) => [c.id as string, c as { user_id: string; session_id: string; tags: { account: string } }]));

  for (const method of ['stable', 'exact'] as const) {
    it(`group_by user_id, session_id and tags.<key> (${method})`, async () => {
      for (const [groupBy, keyOf, groups] of [
        ['user_id', (id: string) => meta.get(id)?.user_id, 40],
        ['session_id', (id: string) => meta.get(id)?.session_id, 30],
        ['tags.account', (id: string) => meta.get(id)?.tags.account, 25],
      ] as const) {
        const r = await curate(root, { logs, stages: [{ split: { method, test_fraction: 0.25, group_by: groupBy } }] });
        expect(assertNoStraddle(r, keyOf), groupBy).toBe(groups);
        expect(r.test.length, groupBy).toBeGreaterThan(0);
        expect(r.train.length, groupBy).toBeGreaterThan(0);
      }
    });
  }

  it('conversations with identical normalised prompts land in the same split, across users', async () => {
    const base = Array.from({ length: 60 }, () => prompt());
    const pairs = base.flatMap((p, k) => [
      chat(`p${k}-a`, p, 'first answer', { user_id: `ua${k}` }),
      chat(`p${k}-b`, `  ${p.toUpperCase().replace(/ /g, '   ')} `, 'second answer', { user_id: `ub${k}` }),
    ]);
    for (const split of [{ test_fraction: 0.3 }, { method: 'exact', test_fraction: 0.3 }, { test_fraction: 0.3, group_by: 'user_id' }, { method: 'exact', test_size: 33, group_by: 'user_id' }]) {
      const r = await curate(root, { logs: pairs, stages: [{ split }] });
      expect(assertNoStraddle(r, (id) => id.split('-')[0]), JSON.stringify(split)).toBe(60);
      expect(r.test.length).toBeGreaterThan(0);
    }
  });

  it('a group linked to another by a shared prompt moves with it as one', async () => {
    // u1 and u2 share one prompt: all of u1's and u2's conversations must land together.
    const shared = prompt();
    const linked = [
      chat('u1-a', shared, 'x', { user_id: 'u1' }),
      chat('u1-b', prompt(), 'x', { user_id: 'u1' }),
      chat('u2-a', shared, 'y', { user_id: 'u2' }),
      chat('u2-b', prompt(), 'y', { user_id: 'u2' }),
      ...Array.from({ length: 40 }, (_, k) => chat(`o${k}`, prompt(), 'z', { user_id: `o${k}` })),
    ];
    for (let seed = 0; seed < 5; seed++) {
      const r = await curate(root, { logs: linked, seed, stages: [{ split: { test_fraction: 0.5, group_by: 'user_id' } }] });
      const s = splitOf(r);
      expect(new Set(['u1-a', 'u1-b', 'u2-a', 'u2-b'].map((id) => s.get(id))).size).toBe(1);
    }
  });
});

describe('split: no notion of "prompt" straddles train and test', () => {
  it('links conversations that share their first or their last user turn, not only all of them', async () => {
    const logs: unknown[] = [];
    for (let g = 0; g < 40; g++) {
      const opener = `opening question number ${g} ${prompt()}`;
      const closer = `closing question number ${g} ${prompt()}`;
      // Same first turn, different follow-ups; then same last turn, different openers.
      logs.push({ id: `f${g}a`, messages: [{ role: 'user', content: opener }, { role: 'assistant', content: 'a' }, { role: 'user', content: prompt() }, { role: 'assistant', content: 'b' }] });
      logs.push({ id: `f${g}b`, messages: [{ role: 'user', content: opener.toUpperCase() }, { role: 'assistant', content: 'c' }, { role: 'user', content: prompt() }, { role: 'assistant', content: 'd' }] });
      logs.push({ id: `l${g}a`, messages: [{ role: 'user', content: prompt() }, { role: 'assistant', content: 'e' }, { role: 'user', content: closer }, { role: 'assistant', content: 'f' }] });
      logs.push({ id: `l${g}b`, messages: [{ role: 'user', content: closer }, { role: 'assistant', content: 'g' }] });
    }
    for (const method of ['stable', 'exact']) {
      const r = await curate(root, { logs, stages: [{ split: { test_fraction: 0.5, method } }], emit: EMIT, seed: 11 });
      const groups = assertNoStraddle(r, (id) => id.slice(0, -1));
      expect(groups).toBe(80);
      expect(r.testIds.length).toBeGreaterThan(0);
      expect(r.trainIds.length).toBeGreaterThan(0);
    }
  });

  it('conversations without any user turn are not all linked into one group', async () => {
    const logs = Array.from({ length: 60 }, (_, k) => ({ id: `s${k}`, messages: [{ role: 'system', content: 'sys' }, { role: 'assistant', content: `unprompted ${k}` }] }));
    const r = await curate(root, { logs, stages: [{ filter: { require_assistant_last: true } }, { split: { test_fraction: 0.5, method: 'exact' } }], emit: EMIT });
    expect(r.testIds.length).toBe(30);
    expect(r.trainIds.length).toBe(30);
  });
});

describe('split: the test share follows test_fraction whatever the components look like', () => {
  const twoTurns = (id: string, first: string, second: string) => ({
    id,
    messages: [
      { role: 'user', content: first },
      { role: 'assistant', content: `a ${id}` },
      { role: 'user', content: second },
      { role: 'assistant', content: `b ${id}` },
    ],
  });

  it('a component of several conversations is no likelier to land in test than a single one', async () => {
    // 400 components of 4 conversations sharing a first turn, each with its own prompt (so its own key).
    const logs = Array.from({ length: 1600 }, (_, k) => twoTurns(`c${k}`, `shared opener number ${k >> 2}`, `follow-up ${k} ${prompt()}`));
    const r = await curate(root, { logs, stages: [{ split: { test_fraction: 0.2 } }], emit: EMIT, seed: 5 });
    const groups = assertNoStraddle(r, (id) => String(Number(id.slice(1)) >> 2));
    expect(groups).toBe(400);
    // Each component lands in test with probability 0.2 (the smallest of four members' values, the old rule,
    // gave 1 - 0.8^4 = 59%): 80 of 400 expected, standard deviation 8.
    expect(r.testIds.length / 4).toBeGreaterThan(80 - 32);
    expect(r.testIds.length / 4).toBeLessThan(80 + 32);
  });

  it('a later night linking new conversations to old ones (a shared first turn) moves none of the old ones', async () => {
    const dir = join(root, 'linked-nights');
    mkdirSync(dir);
    const openers = Array.from({ length: 300 }, (_, k) => `opening question ${k} ${prompt()}`);
    const night1 = openers.map((o, k) => twoTurns(`old${k}`, o, `old follow-up ${k} ${prompt()}`));
    // Each new conversation shares its first turn with one old one, so it joins that one's group.
    const night2 = openers.map((o, k) => twoTurns(`new${k}`, o, `new follow-up ${k} ${prompt()}`));
    writeFileSync(join(dir, 'night-1.jsonl'), jsonl(night1));
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify({ name: 'n', seed: 8, inputs: ['night-*.jsonl'], stages: [{ split: { test_fraction: 0.3 } }, { emit: EMIT }] }));
    const db = join(dir, 'store.db');
    const first = readOutputs(join(dir, 'o1'), await runConfigFile(join(dir, 'cfg.json'), { db, out: join(dir, 'o1') }));
    writeFileSync(join(dir, 'night-2.jsonl'), jsonl(night2));
    const second = readOutputs(join(dir, 'o2'), await runConfigFile(join(dir, 'cfg.json'), { db, out: join(dir, 'o2') }));
    const before = splitOf(first);
    const after = splitOf(second);
    const moved = [...before].filter(([id, status]) => after.get(id) !== status).map(([id]) => id);
    expect(moved).toEqual([]);
    for (let k = 0; k < 300; k++) expect(after.get(`new${k}`), `new${k}`).toBe(after.get(`old${k}`));
    expect(first.testIds.length).toBeGreaterThan(0);
  });

  it('a newcomer whose first and last turns are two groups on opposite sides joins the first and moves neither', async () => {
    const dir = join(root, 'bridge-nights');
    mkdirSync(dir);
    const single = (id: string, q: string) => ({ id, messages: [{ role: 'user', content: q }, { role: 'assistant', content: `a ${id}` }] });
    const questions = Array.from({ length: 40 }, (_, k) => `question ${k} ${prompt()}`);
    writeFileSync(join(dir, 'night-1.jsonl'), jsonl(questions.map((q, k) => single(`n1-${k}`, q))));
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify({ name: 'b', seed: 3, inputs: ['night-*.jsonl'], stages: [{ split: { test_fraction: 0.5 } }, { emit: EMIT }] }));
    const db = join(dir, 'store.db');
    const first = readOutputs(join(dir, 'o1'), await runConfigFile(join(dir, 'cfg.json'), { db, out: join(dir, 'o1') }));
    const before = splitOf(first);
    // Bridges: each opens with a test conversation's question and ends with a train one's.
    const inTest = questions.map((_, k) => k).filter((k) => before.get(`n1-${k}`) === 'test');
    const inTrain = questions.map((_, k) => k).filter((k) => before.get(`n1-${k}`) === 'train');
    expect(inTest.length).toBeGreaterThan(3);
    expect(inTrain.length).toBeGreaterThan(3);
    const bridges = [0, 1, 2].map((b) => twoTurns(`bridge-${b}`, questions[inTest[b]!]!, questions[inTrain[b]!]!));
    // And the other way round: a train question first, a test one last.
    bridges.push(twoTurns('bridge-3', questions[inTrain[3]!]!, questions[inTest[3]!]!));
    writeFileSync(join(dir, 'night-2.jsonl'), jsonl(bridges));
    const second = readOutputs(join(dir, 'o2'), await runConfigFile(join(dir, 'cfg.json'), { db, out: join(dir, 'o2') }));
    const after = splitOf(second);
    expect([...before].filter(([id, status]) => after.get(id) !== status).map(([id]) => id)).toEqual([]);
    expect([0, 1, 2].map((b) => after.get(`bridge-${b}`))).toEqual(['test', 'test', 'test']);
    expect(after.get('bridge-3')).toBe('train');
    const store = new Database(db, { readonly: true });
    const stats = store.prepare('SELECT stats_json FROM run_stages WHERE run_id = ? AND name = ?').pluck().get(second.manifest.run.id, 'split') as string;
    store.close();
    expect(JSON.parse(stats)).toMatchObject({ turn_links_kept_apart: 4 });
    // Both nights ingested at once give the same split: where a conversation lands does not depend on how the
    // logs were cut into nights.
    const once = await curate(root, { logs: [...questions.map((q, k) => single(`n1-${k}`, q)), ...bridges], stages: [{ split: { test_fraction: 0.5 } }], emit: EMIT, seed: 3 });
    expect(new Map([...splitOf(once)].sort())).toEqual(new Map([...after].sort()));
  });

  it('warns in the manifest when the test share misses test_fraction, naming a group larger than the test target', async () => {
    // 200 conversations of one user (the first one ingested: its key decides the group), 800 of others.
    const logs = Array.from({ length: 1000 }, (_, k) => chat(`w${k}`, `question ${k} ${prompt()}`, `answer ${k}`, { user_id: k < 200 ? 'power-user' : `u${k}` }));
    const seeds = Array.from({ length: 200 }, (_, s) => s + 1);
    const inTest = seeds.find((s) => seededUnit(s, 'g:power-user') < 0.1)!;
    const inTrain = seeds.find((s) => seededUnit(s, 'g:power-user') >= 0.1)!;
    const r = await curate(root, { logs, stages: [{ split: { test_fraction: 0.1, group_by: 'user_id' } }], emit: EMIT, seed: inTest });
    const share = `${((100 * r.testIds.length) / 1000).toFixed(1)}%`;
    expect(r.testIds.length).toBeGreaterThanOrEqual(200);
    expect(r.manifest.warnings).toContain(
      `split: the test set holds ${share} of 1000 conversations, not 10.0%: 200 conversations (20.0%) form one group (by user_id or shared prompts), more than the whole test target`,
    );
    // The same group in train leaves a share close enough to 10%: no warning.
    const quiet = await curate(root, { logs, stages: [{ split: { test_fraction: 0.1, group_by: 'user_id' } }], emit: EMIT, seed: inTrain });
    expect(quiet.manifest.warnings.filter((w: string) => w.startsWith('split:'))).toEqual([]);
  });

  it('a boilerplate last turn ("thanks") shared by many conversations does not glue them into one group', async () => {
    const n = 4 * LINK_CAP;
    const logs = Array.from({ length: n }, (_, k) => twoTurns(`t${k}`, `question ${k} ${prompt()}`, 'Thanks!'));
    const r = await curate(root, { logs, stages: [{ split: { test_fraction: 0.25 } }], emit: EMIT, seed: 9 });
    // Linked, all 200 would land on one side. Unlinked: 50 expected in test, standard deviation ~6.
    expect(r.testIds.length).toBeGreaterThan(50 - 25);
    expect(r.testIds.length).toBeLessThan(50 + 25);
    // A turn no more common than LINK_CAP still links: LINK_CAP conversations sharing a closer stay together.
    const few = Array.from({ length: LINK_CAP }, (_, k) => twoTurns(`f${k}`, `question ${k} ${prompt()}`, 'Thanks a lot, that settles it!'));
    const r2 = await curate(root, { logs: few, stages: [{ split: { test_fraction: 0.25 } }], emit: EMIT, seed: 9 });
    expect(assertNoStraddle(r2, () => 'all')).toBe(1);
  });
});
