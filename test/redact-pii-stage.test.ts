import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './support/tmp.js';
import { chat, curate } from './support/pipeline.js';

const root = tempDir('logcurate-redact-');

// Assembled at runtime so no secret scanner flags this file.
const EMAIL = 'jane.doe' + '@example.com';
const EMAIL2 = 'ops' + '@acme-corp.io';
const KEY = 'sk-' + 'proj-' + 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z';
const PHONE = '(415) 555-2671';
const CARD = '4111 1111 1111 1111';
const SSN = '123-45-6789';
const IP = '192.168.0.1';
const SECRETS = [EMAIL, EMAIL2, KEY, PHONE, CARD, SSN, IP];

const toolCall = {
  id: 'tc-1',
  messages: [
    { role: 'user', content: 'Email the invoice to my colleague please' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'send_email', arguments: JSON.stringify({ to: EMAIL2, note: `call ${PHONE}` }) } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: `sent to ${EMAIL2}` },
    { role: 'assistant', content: 'Done, the invoice is on its way.' },
  ],
  tools: [{ type: 'function', function: { name: 'send_email', parameters: { type: 'object', properties: { to: { type: 'string' } } } } }],
};

const logs = [
  chat('email', `Hi, I am ${EMAIL}, reset my password`, `Sure, I sent a link to ${EMAIL}.`),
  chat('key', `my key is ${KEY} and it fails`, 'Please rotate that key right away.'),
  chat('phone', `call me at ${PHONE}`, 'We will call you.'),
  chat('card', `charge card ${CARD}`, 'Done.'),
  chat('ssn', `my SSN: ${SSN}`, 'Never share that.'),
  chat('ip', `my server at ${IP} is down`, 'Restarting it.'),
  chat('parts', 'x', 'y', { messages: [{ role: 'user', content: [{ type: 'text', text: `write to ${EMAIL}` }] }, { role: 'assistant', content: 'ok' }] }),
  chat('clean', 'what are your opening hours?', 'Nine to five.'),
  toolCall,
];

function outputText(out: string): string {
  return readdirSync(out)
    .map((f) => readFileSync(join(out, f), 'utf8'))
    .join('\n');
}

describe('redact_pii', () => {
  it('redact (the default) replaces every kind with its placeholder in the emitted files, tool-call arguments included', async () => {
    const r = await curate(root, { logs, stages: [{ redact_pii: {} }], emit: { report: true } });
    expect(r.train).toHaveLength(logs.length);
    expect(readdirSync(r.out).sort()).toEqual(['lineage.jsonl', 'manifest.json', 'report.html', 'test.jsonl', 'train.jsonl']);
    const all = outputText(r.out);
    for (const s of SECRETS) expect(all, s).not.toContain(s);
    expect(r.example('email').messages.map((m) => m.content)).toEqual(['Hi, I am [EMAIL], reset my password', 'Sure, I sent a link to [EMAIL].']);
    expect(r.example('key').messages[0]!.content).toBe('my key is [API_KEY] and it fails');
    expect(r.example('phone').messages[0]!.content).toBe('call me at [PHONE]');
    expect(r.example('card').messages[0]!.content).toBe('charge card [CREDIT_CARD]');
    expect(r.example('ssn').messages[0]!.content).toBe('my SSN: [SSN]');
    expect(r.example('ip').messages[0]!.content).toBe('my server at [IP] is down');
    expect(r.example('parts').messages[0]!.content).toBe('write to [EMAIL]');
    expect(r.example('clean').messages.map((m) => m.content)).toEqual(['what are your opening hours?', 'Nine to five.']);
    const tc = r.example('tc-1');
    const args = JSON.parse((tc.messages[1]!.tool_calls as { function: { arguments: string } }[])[0]!.function.arguments);
    expect(args).toEqual({ to: '[EMAIL]', note: 'call [PHONE]' });
    expect(tc.messages[2]!.content).toBe('sent to [EMAIL]');
    expect(tc.tools).toEqual(toolCall.tools);
    // Redaction drops nothing; the report counts the redactions.
    expect(r.manifest.stages[0]).toEqual({ name: 'redact_pii', in: logs.length, out: logs.length, dropped: {} });
    expect(readFileSync(join(r.out, 'report.html'), 'utf8')).toMatch(/[1-9]\d* redactions in total/);
  });

  it('roles restricts redaction to the listed roles', async () => {
    const r = await curate(root, { logs, stages: [{ redact_pii: { roles: ['user'] } }] });
    expect(r.example('email').messages.map((m) => m.content)).toEqual(['Hi, I am [EMAIL], reset my password', `Sure, I sent a link to ${EMAIL}.`]);
    // The tool message and the assistant's call arguments are left alone.
    const tc = r.example('tc-1');
    expect(tc.messages[2]!.content).toBe(`sent to ${EMAIL2}`);
    expect(JSON.stringify(tc.messages[1]!.tool_calls)).toContain(EMAIL2);
  });

  it('kinds restricts what is redacted', async () => {
    const r = await curate(root, { logs, stages: [{ redact_pii: { kinds: ['email', 'ssn'] } }] });
    expect(r.example('email').messages[0]!.content).toBe('Hi, I am [EMAIL], reset my password');
    expect(r.example('ssn').messages[0]!.content).toBe('my SSN: [SSN]');
    expect(r.example('phone').messages[0]!.content).toBe(`call me at ${PHONE}`);
    expect(r.example('key').messages[0]!.content).toContain(KEY);
  });

  it('action: drop drops every conversation with PII, reason pii:<kind>, and nothing of them reaches any file', async () => {
    const r = await curate(root, { logs, stages: [{ redact_pii: { action: 'drop' } }], emit: { report: true } });
    expect(r.trainIds).toEqual(['clean']);
    expect(r.dropped).toEqual({
      email: 'pii:email',
      key: 'pii:api_key',
      phone: 'pii:phone',
      card: 'pii:credit_card',
      ssn: 'pii:ssn',
      ip: 'pii:ip',
      parts: 'pii:email',
      'tc-1': 'pii:email',
    });
    expect(r.manifest.stages[0]!.dropped).toEqual({ 'pii:api_key': 1, 'pii:credit_card': 1, 'pii:email': 3, 'pii:ip': 1, 'pii:phone': 1, 'pii:ssn': 1 });
    // The report shows sample dropped conversations: redacted there too. It counts no redactions: none were made.
    const report = readFileSync(join(r.out, 'report.html'), 'utf8');
    expect(report).toContain('pii:email');
    expect(report).not.toContain('redactions in total');
    expect(report).toContain('No PII was redacted. (Conversations a redact_pii stage drops instead are in the funnel, as pii:&lt;kind&gt;.)');
    const all = outputText(r.out);
    for (const s of SECRETS) expect(all, s).not.toContain(s);
  });

  it('the arguments of a legacy function_call are redacted like those of a tool call, and action: drop looks at them', async () => {
    const legacy = {
      id: 'fc-1',
      messages: [
        { role: 'user', content: 'file my tax form' },
        { role: 'assistant', content: null, function_call: { name: 'file_form', arguments: `{"ssn": "${SSN}", "card": ${CARD.replace(/ /g, '')}}` } },
        { role: 'function', name: 'file_form', content: 'filed' },
        { role: 'assistant', content: 'Filed.' },
      ],
    };
    const few = [legacy, chat('clean', 'what are your opening hours?', 'Nine to five.')];
    const r = await curate(root, { logs: few, stages: [{ redact_pii: {} }] });
    const call = (r.example('fc-1').messages[1] as { function_call?: { name: string; arguments: string } }).function_call!;
    expect(call.name).toBe('file_form');
    // Still JSON: the card, a bare number there, became a quoted placeholder.
    expect(JSON.parse(call.arguments)).toEqual({ ssn: '[SSN]', card: '[CREDIT_CARD]' });
    expect(outputText(r.out)).not.toContain(SSN);
    const dropped = await curate(root, { logs: few, stages: [{ redact_pii: { action: 'drop' } }] });
    expect(dropped.dropped).toEqual({ 'fc-1': 'pii:ssn' });
    expect(dropped.trainIds).toEqual(['clean']);
  });

  it('action: drop with roles only looks at those roles', async () => {
    const r = await curate(root, { logs, stages: [{ redact_pii: { action: 'drop', roles: ['assistant'], kinds: ['email'] } }] });
    // Only 'email' has an address in an assistant turn's text; tc-1 has one in its call arguments.
    expect(r.dropped).toEqual({ email: 'pii:email', 'tc-1': 'pii:email' });
  });
});
