import { describe, expect, it } from 'vitest';
import { findPii, luhnValid, PII_KINDS, PII_PLACEHOLDER, redactPii, type PiiKind } from '../pipeline/pii.js';

/** The substrings found for one kind, in order — what a reader of a failing test wants to see. */
function found(text: string, kind: PiiKind): string[] {
  return findPii(text, [kind]).map((m) => text.slice(m.start, m.end));
}

function foundAll(text: string): Array<[PiiKind, string]> {
  return findPii(text, PII_KINDS).map((m) => [m.kind, text.slice(m.start, m.end)]);
}

// Fixture secrets are assembled at runtime so this file never contains a literal that secret scanners
// (or our own redactor, if someone runs it over the repo) would flag as a real credential.
const rep = (s: string, n: number): string => s.repeat(n);
const OPENAI_KEY = 'sk-' + 'proj-' + 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z';
const OPENAI_LEGACY = 'sk-' + 'T3BlbkFJ' + rep('a1B2c3', 7);
const ANTHROPIC_KEY = 'sk-' + 'ant-api03-' + rep('Zx9_Yw8-Vu7', 8);
const AWS_KEY = 'AKIA' + 'IOSFODNN7EXAMPLE';
const GITHUB_KEY = 'ghp_' + rep('a1B2c3D4e5', 4);
const GITHUB_PAT = 'github_pat_' + '11ABCDEFG0' + rep('x_Y1z', 10);
const SLACK_KEY = 'xoxb-' + '123456789012-1234567890123-' + 'AbCdEfGhIjKlMnOpQrStUvWx';
const STRIPE_KEY = 'sk_' + 'live_' + '51H8zQ2eZvKYlo2C0abcdEFGH';
const GOOGLE_KEY = 'AIza' + 'SyD-1a2b3c4d5e6f7g8h9i0jKLMNOPQRSTU';
const JWT =
  'eyJ' +
  'hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9' +
  '.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0' +
  '.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
const PEM = [
  '-----BEGIN ' + 'RSA PRIVATE KEY-----',
  'MIIEowIBAAKCAQEAr8vJ0mJw4Ew0Z3m9yP7q1S2Ue3a5c6d7e8f9g0h1i2j3k4l5m6n7',
  'o8p9q0r1s2t3u4v5w6x7y8z9A0B1C2D3E4F5G6H7I8J9K0L1M2N3O4P5Q6R7S8T9U0V',
  '-----END ' + 'RSA PRIVATE KEY-----',
].join('\n');

describe('email', () => {
  it('finds ordinary, plus-addressed and subdomain addresses', () => {
    expect(found('mail jane.doe@example.com today', 'email')).toEqual(['jane.doe@example.com']);
    expect(found('use bob+newsletter@mail.example.co.uk.', 'email')).toEqual(['bob+newsletter@mail.example.co.uk']);
    expect(found('<ops_team-1@eu.corp.acme.io>', 'email')).toEqual(['ops_team-1@eu.corp.acme.io']);
    expect(found('a@b.co and c@d.org', 'email')).toEqual(['a@b.co', 'c@d.org']);
  });

  it('ignores things that only look a bit like addresses', () => {
    expect(found('a@b', 'email')).toEqual([]);
    expect(found('root@localhost', 'email')).toEqual([]);
    expect(found('x@y.z', 'email')).toEqual([]);
    expect(found('@mention me, or email@', 'email')).toEqual([]);
    expect(found('decorators like @dataclass and @app.route', 'email')).toEqual([]);
  });
});

describe('phone', () => {
  it('finds E.164, US and spaced international formats', () => {
    expect(found('call +14155552671 now', 'phone')).toEqual(['+14155552671']);
    expect(found('call (415) 555-2671.', 'phone')).toEqual(['(415) 555-2671']);
    expect(found('call 415-555-2671', 'phone')).toEqual(['415-555-2671']);
    expect(found('call 415.555.2671', 'phone')).toEqual(['415.555.2671']);
    expect(found('call 415 555 2671', 'phone')).toEqual(['415 555 2671']);
    expect(found('call +1 (415) 555-2671', 'phone')).toEqual(['+1 (415) 555-2671']);
    expect(found('call 1-800-555-0199', 'phone')).toEqual(['1-800-555-0199']);
    expect(found('London: +44 20 7946 0958', 'phone')).toEqual(['+44 20 7946 0958']);
    expect(found('Paris +33 1 23 45 67 89', 'phone')).toEqual(['+33 1 23 45 67 89']);
    expect(found('+44 (0)20 7946 0958', 'phone')).toEqual(['+44 (0)20 7946 0958']);
    // Groups of 5 to 8 digits, as many countries write them.
    for (const n of ['+44 7911 123456', '+91 98765 43210', '+49 30 12345678', '+49 1512 3456789', '+55 11 91234-5678']) {
      expect(found(`call ${n} today`, 'phone'), n).toEqual([n]);
    }
  });

  it('finds each number of a list written without spaces', () => {
    expect(found('415-555-2671,415-555-2672', 'phone')).toEqual(['415-555-2671', '415-555-2672']);
    expect(found('+44 20 7946 0958,+44 20 7946 0959', 'phone')).toEqual(['+44 20 7946 0958', '+44 20 7946 0959']);
  });

  it('leaves years, dates, prices, versions and order numbers alone', () => {
    for (const text of [
      'In 2024 we shipped 1999 units.',
      'Due 2024-11-03, paid 2024/11/03.',
      'It costs $1,299.99 or 415.55 EUR.',
      'Upgrade to v4.15.5 or 10.2.3.',
      'Order #415-555-2671 shipped.',
      'Order number 4155552671.',
      'Scores: 415 555-2671x',
      'Pages 415-555, lines 26-71.',
      'timestamp 1700000000000',
      '+1 2 3',
    ]) {
      expect(found(text, 'phone'), text).toEqual([]);
    }
  });
});

describe('phone: shapes a naive checker would flag', () => {
  it('redacts made-up and test numbers shaped like North American phones', () => {
    for (const text of ['call 555-123-4567', 'call 123-456-7890', 'call (012) 345-6789', 'call 800.123.4567']) {
      expect(found(text, 'phone'), text).toHaveLength(1);
    }
  });
});

describe('credit_card', () => {
  it('implements Luhn', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
    expect(luhnValid('79927398713')).toBe(true);
    expect(luhnValid('378282246310005')).toBe(true);
  });

  it('finds Luhn-valid 13–19 digit numbers, grouped or not', () => {
    expect(found('card 4111111111111111 exp 12/27', 'credit_card')).toEqual(['4111111111111111']);
    expect(found('card 4111 1111 1111 1111.', 'credit_card')).toEqual(['4111 1111 1111 1111']);
    expect(found('card 5500-0000-0000-0004', 'credit_card')).toEqual(['5500-0000-0000-0004']);
    expect(found('amex 3782 822463 10005', 'credit_card')).toEqual(['3782 822463 10005']);
    expect(found('visa13 4222222222222', 'credit_card')).toEqual(['4222222222222']);
    expect(found('19 digits 6304 0000 0000 0000 018', 'credit_card')).toEqual(['6304 0000 0000 0000 018']);
  });

  it('finds a card followed by another number, and two cards in a row', () => {
    expect(found('4111 1111 1111 1111 2027', 'credit_card')).toEqual(['4111 1111 1111 1111']);
    expect(found('4111 1111 1111 1111 5500 0000 0000 0004', 'credit_card')).toEqual([
      '4111 1111 1111 1111',
      '5500 0000 0000 0004',
    ]);
  });

  it('finds a card after a label, in a comma list, or after an escaped newline of a JSON string', () => {
    for (const [text, cards] of [
      ['cards: 4111111111111111,5500005555555559', ['4111111111111111', '5500005555555559']],
      ['card#4111111111111111', ['4111111111111111']],
      ['card no.4111111111111111', ['4111111111111111']],
      ['cc-4111111111111111', ['4111111111111111']],
      ['ref_4111111111111111', ['4111111111111111']],
      ['{"note":"4111111111111111\\n5500005555555559"}', ['4111111111111111', '5500005555555559']],
    ] as const) {
      expect(found(text, 'credit_card'), text).toEqual(cards);
    }
  });

  it('rejects Luhn-invalid, too short, too long and embedded numbers', () => {
    expect(found('card 4111111111111112', 'credit_card')).toEqual([]);
    expect(found('card 4111 1111 1111 1112', 'credit_card')).toEqual([]);
    expect(found('id 411111111111', 'credit_card')).toEqual([]); // 12 digits
    expect(found('id 41111111111111111111111', 'credit_card')).toEqual([]); // inside a longer run
    expect(found('hash a4111111111111111', 'credit_card')).toEqual([]);
    expect(found('pi 3.4111111111111111', 'credit_card')).toEqual([]);
  });
});

describe('ssn', () => {
  it('finds valid SSNs', () => {
    expect(found('SSN: 123-45-6789.', 'ssn')).toEqual(['123-45-6789']);
    expect(found('123-45-6789,987-65-4321', 'ssn')).toEqual(['123-45-6789', '987-65-4321']);
    expect(found('ssn 665-01-0001', 'ssn')).toEqual(['665-01-0001']);
  });

  it('matches by shape, never-issued areas included (a written-down number is still sensitive)', () => {
    for (const text of ['000-12-3456', '666-12-3456', '912-34-5678', '123-00-4567', '123-45-0000']) {
      expect(found(text, 'ssn'), text).toEqual([text]);
    }
  });

  it('rejects longer numbers and dates', () => {
    for (const text of ['123-45-67890', '1123-45-6789', '2024-11-03', 'v1.123-45-6789']) {
      expect(found(text, 'ssn'), text).toEqual([]);
    }
  });
});

describe('ip', () => {
  it('finds IPv4 addresses with valid octets', () => {
    expect(found('host 192.168.0.1.', 'ip')).toEqual(['192.168.0.1']);
    expect(found('from 10.0.0.254:8080', 'ip')).toEqual(['10.0.0.254']);
    expect(found('ip:255.255.255.255', 'ip')).toEqual(['255.255.255.255']);
  });

  it('rejects bad octets and version strings', () => {
    for (const text of ['256.1.1.1', '1.2.3.4.5', 'v1.2.3.4', 'version 1.2.3', '01.02.03.04', '192.168.1', '3.14159']) {
      expect(found(text, 'ip'), text).toEqual([]);
    }
  });

  it('finds IPv6 in full, compressed and IPv4-embedded forms', () => {
    expect(found('addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok', 'ip')).toEqual([
      '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
    ]);
    expect(found('addr 2001:db8::8a2e:370:7334.', 'ip')).toEqual(['2001:db8::8a2e:370:7334']);
    expect(found('link-local fe80::1 here', 'ip')).toEqual(['fe80::1']);
    expect(found('[2001:db8::1]:443', 'ip')).toEqual(['2001:db8::1']);
    expect(found('mapped ::ffff:192.0.2.128', 'ip')).toEqual(['::ffff:192.0.2.128']);
    expect(found('addr:2001:db8::1', 'ip')).toEqual(['2001:db8::1']);
    // A label ending in a hex digit is indistinguishable from a leading group, so nothing is reported
    // rather than a wrong span.
    expect(found('ipv6:2001:db8::1', 'ip')).toEqual([]);
  });

  it('rejects times, MAC addresses, code paths and malformed IPv6', () => {
    for (const text of [
      'at 12:30:45',
      'mac 00:1A:2B:3C:4D:5E',
      'std::vector and Foo::bar',
      'dead::beef',
      '2001:db8::1::2',
      '1:2:3:4:5:6:7:8:9',
      '2001:db8:::1',
      'gggg::1',
    ]) {
      expect(found(text, 'ip'), text).toEqual([]);
    }
  });
});

describe('api_key', () => {
  it('finds provider key formats', () => {
    for (const key of [OPENAI_KEY, OPENAI_LEGACY, ANTHROPIC_KEY, AWS_KEY, GITHUB_KEY, GITHUB_PAT, SLACK_KEY, STRIPE_KEY, GOOGLE_KEY, JWT]) {
      expect(found(`export KEY="${key}"\n`, 'api_key'), key).toEqual([key]);
      expect(found(`my key is ${key}.`, 'api_key'), key).toEqual([key]);
    }
    for (const prefix of ['gho_', 'ghu_', 'ghs_', 'ghr_']) {
      const key = prefix + rep('Q9w8E7r6T5', 4);
      expect(found(`token ${key}`, 'api_key')).toEqual([key]);
    }
    for (const prefix of ['xoxa-', 'xoxp-', 'xoxr-', 'xoxs-']) {
      const key = prefix + '2-1234567890-AbCdEf';
      expect(found(`slack ${key}`, 'api_key')).toEqual([key]);
    }
    for (const prefix of ['rk_live_', 'pk_live_', 'sk_test_']) {
      const key = prefix + '4eC39HqLyjWDarjtT1zdp7dc';
      expect(found(`stripe ${key}`, 'api_key')).toEqual([key]);
    }
    const asia = 'ASIA' + 'Y34FZKBOKMUTVV7A';
    expect(found(`aws ${asia}`, 'api_key')).toEqual([asia]);
  });

  it('redacts only the token of a bearer header', () => {
    const token = 'abc123DEF456ghi789JKL0';
    const text = `curl -H "Authorization: Bearer ${token}" https://api.example.com`;
    expect(found(text, 'api_key')).toEqual([token]);
    expect(redactPii(text, ['api_key']).text).toBe('curl -H "Authorization: Bearer [API_KEY]" https://api.example.com');
    expect(found(`use bearer ${JWT}`, 'api_key')).toEqual([JWT]);
    expect(found(`AUTHORIZATION: BEARER ${token}`, 'api_key')).toEqual([token]);
  });

  it('redacts whole PEM private key blocks, even truncated ones', () => {
    const text = `here is my key:\n${PEM}\nwhy does ssh reject it?`;
    expect(found(text, 'api_key')).toEqual([PEM]);
    expect(redactPii(text, ['api_key']).text).toBe('here is my key:\n[API_KEY]\nwhy does ssh reject it?');
    const cut = PEM.split('\n').slice(0, 3).join('\n');
    expect(redactPii(`${cut}\n\nIs this safe to share?`, ['api_key']).text).toBe('[API_KEY]\n\nIs this safe to share?');
    const openssh = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';
    expect(found(`x ${openssh} y`, 'api_key')).toEqual([openssh]);
  });

  it('ignores prose and public keys that merely resemble secrets', () => {
    for (const text of [
      'Use sk-learn or scikit-learn for this.',
      'sk-this-is-a-long-kebab-case-slug-name',
      'the bearer of bad news arrived',
      'Bearer token goes in the header',
      'AKIA is a prefix; AKIAshort is not a key',
      'ghp_short',
      'eyJhbGciOi without dots',
      '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----',
      '-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END CERTIFICATE-----',
    ]) {
      expect(found(text, 'api_key'), text).toEqual([]);
    }
  });
});

describe('overlaps between kinds', () => {
  it('prefers the more specific kind', () => {
    // An E.164 number as the local part of an email address is part of the address.
    const addr = '+14155552671@txt.example.com';
    expect(found(`text ${addr}`, 'phone')).toEqual(['+14155552671']);
    expect(foundAll(`text ${addr}`)).toEqual([['email', addr]]);
    expect(foundAll('text 4155552671@txt.example.com')).toEqual([['email', '4155552671@txt.example.com']]);
    // A key containing a Luhn-valid run is a key.
    const key = 'sk-' + 'proj-' + '4111111111111111abcDEF';
    expect(foundAll(`key ${key}`)).toEqual([['api_key', key]]);
    // A JWT inside a bearer header is reported once.
    expect(foundAll(`Authorization: Bearer ${JWT}`)).toEqual([['api_key', JWT]]);
  });

  it('respects the kinds asked for', () => {
    const text = 'mail a@b.co, call 415-555-2671, ssn 123-45-6789, ip 10.0.0.1';
    expect(findPii(text, ['phone', 'ip']).map((m) => m.kind)).toEqual(['phone', 'ip']);
    // A `+` in front makes a Luhn-valid digit run a phone number, not a card.
    expect(foundAll('call +4222222222222 now')).toEqual([['phone', '+4222222222222']]);
    expect(findPii(text, [])).toEqual([]);
  });

  it('returns sorted, non-overlapping matches', () => {
    const text = `a@b.co 10.0.0.1 415-555-2671 4111111111111111 123-45-6789 ${AWS_KEY} fe80::1 x@y.io`;
    const ms = findPii(text, PII_KINDS);
    expect(ms.map((m) => m.kind)).toEqual(['email', 'ip', 'phone', 'credit_card', 'ssn', 'api_key', 'ip', 'email']);
    for (let i = 1; i < ms.length; i++) expect(ms[i].start).toBeGreaterThanOrEqual(ms[i - 1].end);
  });
});

describe('redactPii', () => {
  it('replaces matches with placeholders and counts them per kind', () => {
    const text = 'Hi, I am jane@example.com (or j.doe@corp.example.org), call +1 415-555-2671; card 4111 1111 1111 1111; ssn 123-45-6789; server 203.0.113.7.';
    const r = redactPii(text, PII_KINDS);
    expect(r.text).toBe('Hi, I am [EMAIL] (or [EMAIL]), call [PHONE]; card [CREDIT_CARD]; ssn [SSN]; server [IP].');
    expect(r.counts).toEqual({ email: 2, phone: 1, credit_card: 1, ssn: 1, ip: 1 });
  });

  it('keeps a JSON document one (json: true): a match outside string literals becomes a quoted placeholder', () => {
    const args = '{"card": 4111111111111111, "amount": 5, "note": "card 4111 1111 1111 1111, call +44 20 7946 0958", "tel": [4155552671, "x"]}';
    const r = redactPii(args, PII_KINDS, { json: true });
    expect(JSON.parse(r.text)).toEqual({ card: '[CREDIT_CARD]', amount: 5, note: 'card [CREDIT_CARD], call [PHONE]', tel: [4155552671, 'x'] });
    expect(r.counts).toEqual({ credit_card: 2, phone: 1 });
    // Plain text, or text that is not JSON, is redacted as it always was.
    expect(redactPii('{"card": 4111111111111111', PII_KINDS, { json: true }).text).toBe('{"card": [CREDIT_CARD]');
    expect(redactPii('{"card": 4111111111111111}', PII_KINDS).text).toBe('{"card": [CREDIT_CARD]}');
  });

  it('returns the same string instance and no counts when nothing matched', () => {
    const text = 'Nothing to see here: version 1.2.3, 2024-11-03, $19.99, order 12345.';
    const r = redactPii(text, PII_KINDS);
    expect(r.text).toBe(text);
    expect(Object.is(r.text, text)).toBe(true);
    expect(r.counts).toEqual({});
    expect(redactPii('', PII_KINDS).text).toBe('');
  });

  it('has a placeholder for every kind', () => {
    for (const kind of PII_KINDS) expect(PII_PLACEHOLDER[kind]).toBe(`[${kind.toUpperCase()}]`);
  });

  it('keeps surrounding Unicode intact', () => {
    const text = 'Écrivez à zoë@example.fr 😀 ou appelez le +33 1 23 45 67 89 — merci ✓';
    expect(redactPii(text, PII_KINDS).text).toBe('Écrivez à [EMAIL] 😀 ou appelez le [PHONE] — merci ✓');
    expect(found('écrivez à zoë@example.fr', 'email')).toEqual(['zoë@example.fr']);
  });
});

describe('hostile input', () => {
  const adversarial: Array<[string, string]> = [
    ['digits', '1'.repeat(200_000)],
    ['spaced digits', '1234 '.repeat(40_000)],
    ['dashed digits', '123-45-'.repeat(30_000)],
    ['letters', 'a'.repeat(200_000)],
    ['almost emails', 'a.'.repeat(50_000) + '@' + 'b.'.repeat(50_000)],
    ['many ats', 'a@'.repeat(100_000)],
    ['dotted', '1.'.repeat(100_000)],
    ['colons', 'a:'.repeat(100_000)],
    ['plus digits', '+1234567890123456789 '.repeat(10_000)],
    ['key prefixes', 'sk-'.repeat(66_000)],
    ['pem begins', '-----BEGIN PRIVATE KEY-----\n'.repeat(7_000) + '-----END PRIVATE KEY-----'],
    ['bearers', 'Bearer '.repeat(28_000)],
    ['jwt-ish', 'eyJ.'.repeat(50_000)],
    ['odd unicode', '\u{1F600}\u0301\uFFFD\u200B\uD800'.repeat(30_000)],
  ];

  for (const [name, text] of adversarial) {
    it(`finishes quickly on ${name} (${Math.round(text.length / 1000)} KB)`, () => {
      const t0 = performance.now();
      const r = redactPii(text, PII_KINDS);
      const ms = performance.now() - t0;
      expect(typeof r.text).toBe('string');
      // Generous bound: a quadratic regex on 200 KB takes minutes, a linear one milliseconds.
      expect(ms).toBeLessThan(3000);
    });
  }

  it('redacts a PEM block that follows many unterminated BEGIN lines', () => {
    const text = '-----BEGIN PRIVATE KEY-----\n'.repeat(100) + 'that was all, thanks';
    const r = redactPii(text, ['api_key']);
    expect(r.text.endsWith('\nthat was all, thanks')).toBe(true);
    expect(r.counts.api_key).toBe(100);
    expect(r.text).not.toContain('BEGIN');
  });
});

describe('throughput', () => {
  it('redacts ~5 MB of ordinary chat text at a reasonable rate', () => {
    const lines = [
      'Sure! Here is a short summary of the article you shared, in three bullet points.',
      "I'm sorry to hear that. You can reset your password from the account settings page.",
      'In 2023, revenue grew 12.5% to $4.2 billion; see section 3.1 of the report for details.',
      'Run `npm install` and then `npm test`; Node 20.11.1 or newer is required.',
      'The function returns a Map<string, number[]> keyed by user id, e.g. { "u1": [1, 2, 3] }.',
      'Contact support at help@example.com or call 415-555-2671 between 9:00 and 17:00.',
      'Your order 123456 was shipped on 2024-11-03 and should arrive within 3-5 business days.',
      'def add(a, b):\n    return a + b  # O(1), see https://docs.python.org/3/library/functions.html',
    ];
    let text = '';
    let i = 0;
    while (text.length < 5_000_000) text += lines[i++ % lines.length] + '\n';
    // One call per message, as the stage does it.
    const messages = text.split('\n');
    const t0 = performance.now();
    let redacted = 0;
    for (const m of messages) if (redactPii(m, PII_KINDS).text !== m) redacted++;
    const secs = (performance.now() - t0) / 1000;
    const mbps = text.length / 1e6 / secs;
    console.log(`pii throughput: ${mbps.toFixed(1)} MB/s (${(text.length / 1e6).toFixed(1)} MB, ${messages.length} messages, ${secs.toFixed(2)} s)`);
    // Exactly the support line carries PII (an email and a phone).
    expect(redacted).toBe(Math.floor(i / lines.length) + (i % lines.length > 5 ? 1 : 0));
    expect(secs).toBeLessThan(30); // a sanity ceiling, not a benchmark
  });
});
