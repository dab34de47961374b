import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, jsonl, tempDir } from './support/tmp.js';

const dir = tempDir();

describe('logs dumped by an SDK (null fields, structured refusals)', () => {
  it('ingests null optional fields as absent and trains a structured refusal as its text', () => {
    const records: unknown[] = [];
    for (let i = 0; i < 12; i++) {
      records.push({
        id: `s${i}`,
        feedback: 5,
        messages: [
          { role: 'user', content: `question ${i} about invoices`, name: null, tool_calls: null, function_call: null },
          i === 0
            ? { role: 'assistant', content: null, refusal: "I can't help with that.", tool_calls: null, function_call: null, name: null }
            : { role: 'assistant', content: `answer ${i}`, refusal: null, tool_calls: null, function_call: null },
        ],
      });
    }
    const logs = join(dir, 'sdk.jsonl');
    writeFileSync(logs, jsonl(records));
    const cfg = join(dir, 'sdk.yaml');
    writeFileSync(
      cfg,
      `name: sdk\nstore: sdk.db\ninputs: [sdk.jsonl]\nstages:\n  - split: { test_size: 0 }\n  - emit: { dir: out, model: gpt-4o-mini-2024-07-18 }\n`,
    );
    const r = cli(['run', cfg, '--json', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const manifest = JSON.parse(r.stdout);
    expect(manifest.files.train.examples).toBe(12);
    const lines = readFileSync(join(dir, 'out', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const refused = lines.find((l) => l.messages[0].content === 'question 0 about invoices');
    expect(refused.messages[1]).toEqual({ role: 'assistant', content: "I can't help with that." });
    // null fields are not written: OpenAI rejects `tool_calls: null` on some paths and `name: null` everywhere.
    for (const l of lines) for (const m of l.messages) expect(Object.values(m)).not.toContain(null);
  });

  it('still quarantines a null content with nothing beside it, naming the field', () => {
    const logs = join(dir, 'bad-sdk.jsonl');
    writeFileSync(logs, jsonl([{ id: 'b', messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: null, refusal: null }] }]));
    const r = cli(['ingest', logs, '--db', join(dir, 'bad.db'), '--json', '--quiet']);
    expect(JSON.parse(r.stdout).totals.quarantined).toBe(1);
    const q = cli(['stats', '--db', join(dir, 'bad.db'), '--json']);
    expect(JSON.parse(q.stdout).quarantine_reasons[0].reason).toBe('messages[1].content');
  });
});
