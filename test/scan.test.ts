/**
 * ctx.scan's lean rows (pipeline/runner.ts): a stage that names the optional columns it reads gets only those
 * fetched in bulk; any other column it reads anyway must still be right (fetched one row at a time).
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../pipeline/config.js';
import { openStore } from '../pipeline/store.js';
import { runConfig } from '../pipeline/runner.js';
import { defineStage, type ScanField, type ScanOptions } from '../pipeline/stage.js';
import { z } from 'zod';
import { chat } from './support/pipeline.js';
import { jsonl, tempDir } from './support/tmp.js';

const dir = tempDir('logcurate-scan-');

describe('lean scans', () => {
  it('read every column right whatever fields the stage named, with or without signals', async () => {
    const logs = Array.from({ length: 40 }, (_, k) =>
      chat(`s${k}`, `question ${k}`, `answer ${k}`, {
        ...(k % 3 ? { created_at: new Date(Date.UTC(2024, 0, 1 + k)).toISOString() } : {}),
        ...(k % 4 ? { model: `m-${k % 5}` } : {}),
        ...(k % 2 ? { user_id: `u${k % 7}` } : {}),
        ...(k % 5 ? { session_id: `sess${k % 3}` } : {}),
        ...(k % 6 ? { tags: { team: `t${k % 4}`, k } } : {}),
        ...(k % 7 === 3 ? { tools: [{ type: 'function', function: { name: `tool${k}`, parameters: {} } }] } : {}),
      }),
    );
    writeFileSync(join(dir, 'logs.jsonl'), jsonl(logs));
    writeFileSync(
      join(dir, 'scan.json'),
      JSON.stringify({ name: 'scan', inputs: ['logs.jsonl'], stages: [{ filter: { require_assistant_last: true } }, { emit: { dir: 'out', min_examples: 0, report: false, model: 'gpt-4o-mini-2024-07-18' } }] }),
    );
    const loaded = loadConfig(join(dir, 'scan.json'));
    const seen: Record<string, unknown[]> = {};
    const probe = (label: string, opts: ScanOptions) =>
      defineStage({
        name: label,
        params: z.object({}),
        run(ctx) {
          seen[label] = [...ctx.scan(label, opts)].map((c) => [c.id, c.status, c.createdAtMs, c.model, c.userId, c.sessionId, c.tags, c.lastRole, c.assistantTurns, c.signals.keyLength('prompt'), c.sourceFile, c.sourceLine, c.tools, c.messages.length]);
        },
      });
    const fieldsSets: (readonly ScanField[] | undefined)[] = [undefined, [], ['id'], ['tags'], ['createdAtMs', 'userId'], ['model', 'sessionId', 'tags', 'createdAtMs', 'userId', 'id']];
    const probes = fieldsSets.flatMap((fields, k) => [
      { name: `lean${k}`, def: probe(`lean${k}`, { messages: false, fields }), params: {}, path: 'probe' },
      { name: `signals${k}`, def: probe(`signals${k}`, { messages: 'signals', fields }), params: {}, path: 'probe' },
      { name: `text${k}`, def: probe(`text${k}`, { messages: true, fields }), params: {}, path: 'probe' },
    ]);
    const full = { name: 'full', def: probe('full', { messages: true }), params: {}, path: 'probe' };
    const config = { ...loaded, stages: [loaded.stages[0]!, full, ...probes, loaded.stages[1]!] } as typeof loaded;
    const store = openStore(join(dir, 'store.db'));
    try {
      await runConfig(store, config, {});
    } finally {
      await store.close();
    }
    expect(seen.full).toHaveLength(40);
    const src = join(dir, 'logs.jsonl');
    expect(seen.full![1]).toEqual(['s1', 'ok', Date.UTC(2024, 0, 2), 'm-1', 'u1', 'sess1', { team: 't1', k: 1 }, 'assistant', 1, 'question 1'.length, src, 2, null, 2]);
    expect(seen.full![0]).toEqual(['s0', 'ok', null, null, null, null, null, 'assistant', 1, 'question 0'.length, src, 1, null, 2]);
    expect(seen.full![3]![12]).toEqual([{ type: 'function', function: { name: 'tool3', parameters: {} } }]);
    for (const p of probes) expect(seen[p.name], p.name).toEqual(seen.full);
  });
});
