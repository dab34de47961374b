/**
 * PII detection and redaction for the `redact_pii` stage (SPEC §3).
 *
 * Pure functions over strings; they run over every message of every conversation, so they are built
 * for throughput and for hostile input:
 * - every regex starts with a lookbehind that rejects starts inside a run of the same characters, so a
 *   long run is attempted once, not once per position (that is what keeps `[a-z]+@`-style patterns
 *   linear instead of quadratic on 200 KB of letters);
 * - quantifiers are bounded or unambiguous (each repetition consumes a fixed separator), so a failed
 *   match backtracks a bounded number of steps;
 * - cheap substring checks skip a detector entirely when its anchor character/prefix is absent.
 * Anything that is hard to express safely as a regex (Luhn, IPv6 grammar, card grouping, PEM blocks)
 * is matched loosely by a regex and then validated in plain code.
 */

export const PII_KINDS = ['email', 'phone', 'credit_card', 'ip', 'api_key', 'ssn'] as const;
export type PiiKind = (typeof PII_KINDS)[number];

export const PII_PLACEHOLDER: Readonly<Record<PiiKind, string>> = {
  email: '[EMAIL]',
  phone: '[PHONE]',
  credit_card: '[CREDIT_CARD]',
  ip: '[IP]',
  api_key: '[API_KEY]',
  ssn: '[SSN]',
};

export interface PiiMatch {
  readonly kind: PiiKind;
  /** UTF-16 offset of the first character of the match. */
  readonly start: number;
  /** UTF-16 offset one past the last character of the match. */
  readonly end: number;
}

export interface PiiRedaction {
  /** The redacted text; the very same string instance as the input when nothing matched. */
  readonly text: string;
  readonly counts: Partial<Record<PiiKind, number>>;
}

/**
 * When matches of different kinds overlap, the more specific kind wins: a secret is never reported as
 * a card number, a Luhn-valid card never as a phone, and so on. Emails rarely collide with anything, but
 * when a phone number is the local part of an email address (`4155552671@txt.example.com`) the whole
 * address is the PII, so email ranks above the numeric kinds.
 */
const PRIORITY: readonly PiiKind[] = ['api_key', 'email', 'credit_card', 'ssn', 'phone', 'ip'];

// ---------------------------------------------------------------------------------------------------
// Email

// Local part ≤ 64 (RFC 5321; accented Latin letters allowed, as in `zoë@`), up to 8 dot-separated
// labels, alphabetic TLD: `a@b` and `x@localhost` are not addresses worth redacting, and bounding every
// repetition keeps a failed attempt cheap.
const EMAIL_RE =
  /(?<![A-Za-z0-9._%+\-\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F])[A-Za-z0-9_%+\-\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F](?:[A-Za-z0-9._%+\-\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F]{0,62}[A-Za-z0-9_%+\-\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g;

function findEmails(text: string, out: PiiMatch[]): void {
  if (text.indexOf('@') === -1) return;
  collect(text, EMAIL_RE, 'email', out);
}

// ---------------------------------------------------------------------------------------------------
// Phone

// Characters that, right before a number, mean it is part of something else (a longer number, a word,
// a version, an order/ticket number, a price, a path). Not a comma: `415-555-2671,415-555-2672` is a list.
const NUM_LEFT = String.raw`(?<![\w.+#$€£/-])`;

// E.164 without separators: `+14155552671`. The `+` is what makes an unseparated digit run a phone.
const PHONE_E164_RE = new RegExp(String.raw`${NUM_LEFT}\+[1-9]\d{7,14}(?![\w]|[.,]\d)`, 'g');

// International with separators: `+44 20 7946 0958`, `+33 1 23 45 67 89`, `+44 (0)20 7946 0958`,
// `+1 (415) 555-2671`, and groups of up to 8 digits (`+44 7911 123456`, `+91 98765 43210`, `+49 30 12345678`).
// Every group after the country code needs a separator (or a parenthesised part) in front of it, so a digit
// run splits one way only and backtracking stays bounded.
const PHONE_INTL_RE = new RegExp(
  String.raw`${NUM_LEFT}\+[1-9]\d{0,3}(?:(?:[ .-]|[ .-]?\(\d{1,4}\)[ .-]?)\d{1,8}){1,6}(?![\w]|[.-]?\d)`,
  'g',
);

// North American shape: `(415) 555-2671`, `415-555-2671`, `415.555.2671`, `415 555 2671`, optionally
// `+1`/`1` in front. Any digits: a made-up or test number (`555-123-4567`, `123-456-7890`) in a user's message is
// still shaped like a phone number, and a leaked number costs more than a redacted order number. Dates (4-2-2)
// never match the 3-3-4 shape.
const PHONE_US_RE = new RegExp(
  String.raw`${NUM_LEFT}(?:\+?1[ .-]?)?(?:\(\d\d\d\)[ .-]?|\d\d\d([ .-]))\d\d\d([ .-])\d{4}(?![\w]|[.-]?\d)`,
  'g',
);

function findPhones(text: string, out: PiiMatch[]): void {
  const cands: PiiMatch[] = [];
  if (text.indexOf('+') !== -1) {
    collect(text, PHONE_E164_RE, 'phone', cands);
    collect(text, PHONE_INTL_RE, 'phone', cands, (m) => {
      const digits = countDigits(m[0]);
      return digits >= 8 && digits <= 16;
    });
  }
  // `415-555.2671` mixes separators the way a list of numbers does, not the way a phone number is written.
  collect(text, PHONE_US_RE, 'phone', cands, (m) => m[1] === undefined || m[1] === m[2]);
  pushResolved(cands, out);
}

// ---------------------------------------------------------------------------------------------------
// Credit cards

// Loose candidates: up to 8 groups of 3–19 digits joined by single spaces or dashes. Which contiguous
// groups form a Luhn-valid 13–19 digit number is decided in code, so a card followed by an unrelated
// number (`4111 1111 1111 1111 2024`) is still found. The Luhn check and the length let the left side be
// loose: a card after a label (`card#…`, `cc-…`, `ref_…`, `no.…`), in a comma list, or after an escaped
// newline (`\n4111…` in a JSON string) is found. Not one: a longer number, a decimal fraction (`0.4111…`), an
// amount of money, a `+` number (a phone), or digits glued to a word (`a4111…`, the tail of a hash).
const CARD_CAND_RE = /(?<![\d+$€£]|\d\.|(?<!\\)[A-Za-z])\d{3,19}(?:[ -]\d{3,19}){0,7}(?![\w]|\.\d)/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function findCards(text: string, out: PiiMatch[]): void {
  CARD_CAND_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = CARD_CAND_RE.exec(text)) !== null) {
    const base = m.index;
    const s = m[0];
    if (countDigits(s) < 13) continue;
    // Group boundaries inside the candidate.
    const starts: number[] = [];
    const ends: number[] = [];
    let inGroup = false;
    for (let i = 0; i < s.length; i++) {
      const isDigit = s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;
      if (isDigit && !inGroup) starts.push(i);
      if (!isDigit && inGroup) ends.push(i);
      inGroup = isDigit;
    }
    ends.push(s.length);
    // Longest Luhn-valid run of whole groups, scanning left to right so two adjacent cards are both found.
    let i = 0;
    while (i < starts.length) {
      let found = -1;
      for (let j = starts.length - 1; j >= i; j--) {
        const part = s.slice(starts[i], ends[j]);
        const digits = part.replace(/[ -]/g, '');
        if (digits.length >= 13 && digits.length <= 19 && luhnValid(digits)) {
          found = j;
          break;
        }
      }
      if (found === -1) {
        i++;
      } else {
        out.push({ kind: 'credit_card', start: base + starts[i], end: base + ends[found] });
        i = found + 1;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// SSN

// Area 000, 666 and 900–999, group 00 and serial 0000 are never issued; excluding them keeps most
// made-up and structural numbers out.
// By shape, not by the SSA's allocation rules: `000-12-3456` or `900-12-3456` in a log is still someone's
// number written down (or a test value nobody should train on), and redacting it costs nothing.
const SSN_RE = /(?<![\w.+#$€£/-])\d{3}-\d{2}-\d{4}(?![\w]|[.-]?\d)/g;

// ---------------------------------------------------------------------------------------------------
// IP addresses

const OCTET = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
// Not preceded by a word character or a dot and not followed by `.digit`, so `1.2.3.4.5` and `v1.2.3.4`
// (version strings) are not addresses.
const IPV4_RE = new RegExp(String.raw`(?<![\w.])${OCTET}(?:\.${OCTET}){3}(?![\w]|\.\d)`, 'g');
const IPV4_FULL_RE = new RegExp(String.raw`^${OCTET}(?:\.${OCTET}){3}$`);

// Candidate IPv6: a run of hex digits, colons and dots that starts with at most 4 hex digits and a
// colon. The grammar is checked in `isIPv6`; a single character class is matched greedily with nothing
// after it, so the regex never backtracks. The lookbehind refuses starts inside a run but allows a
// `label:` prefix (`ip:2001:db8::1`), whose colon follows a non-hex character.
const IPV6_CAND_RE = /(?<![\w.]|[0-9A-Fa-f:]:)(?=[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:.]+/g;
const HEX_GROUP_RE = /^[0-9A-Fa-f]{1,4}$/;

function isIPv6(s: string): boolean {
  if (s.length < 3 || s.length > 45) return false;
  let head = s;
  if (s.indexOf('.') !== -1) {
    // IPv4-embedded form (`::ffff:192.0.2.1`): the dotted quad counts as the last two groups.
    const lastColon = s.lastIndexOf(':');
    if (!IPV4_FULL_RE.test(s.slice(lastColon + 1))) return false;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = head.indexOf('::');
  if (dbl === -1) {
    const groups = head.split(':');
    return groups.length === 8 && groups.every((g) => HEX_GROUP_RE.test(g));
  }
  if (head.indexOf('::', dbl + 1) !== -1) return false; // at most one `::` (this also rejects `:::`)
  const left = head.slice(0, dbl);
  const right = head.slice(dbl + 2);
  const lg = left === '' ? [] : left.split(':');
  const rg = right === '' ? [] : right.split(':');
  if (!lg.every((g) => HEX_GROUP_RE.test(g)) || !rg.every((g) => HEX_GROUP_RE.test(g))) return false;
  const n = lg.length + rg.length;
  // Compressed addresses with fewer than two groups (`::`, `::1`) identify no one, and hex-only ones
  // like `dead::beef` or `ab::cd` are far more often code (C++/Rust paths) than addresses.
  return n >= 2 && n <= 7 && /\d/.test(head);
}

function findIps(text: string, out: PiiMatch[]): void {
  const cands: PiiMatch[] = [];
  if (text.indexOf('.') !== -1) collect(text, IPV4_RE, 'ip', cands);
  if (text.indexOf(':') !== -1) {
    IPV6_CAND_RE.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = IPV6_CAND_RE.exec(text)) !== null) {
      let s = m[0];
      // Sentence punctuation and a trailing `:` (as in `addr: fe80::1:` or `…::1.`) are not part of it.
      while (s.endsWith('.')) s = s.slice(0, -1);
      let ok = isIPv6(s);
      if (!ok && s.endsWith(':') && !s.endsWith('::')) {
        s = s.slice(0, -1);
        ok = isIPv6(s);
      }
      if (ok) cands.push({ kind: 'ip', start: m.index, end: m.index + s.length });
    }
  }
  pushResolved(cands, out);
}

// ---------------------------------------------------------------------------------------------------
// API keys and other secrets

interface SecretPattern {
  /** Substrings of which one must occur for the regex to be worth running (a cheap pre-check). */
  readonly hints: readonly string[];
  readonly re: RegExp;
  /** When set, only capture group 1 — which must end the match — is the secret (bearer tokens). */
  readonly tokenGroup?: boolean;
  readonly check?: (secret: string) => boolean;
}

const KEY_LEFT = String.raw`(?<![A-Za-z0-9_-])`;
const KEY_RIGHT = String.raw`(?![A-Za-z0-9_-])`;
const hasDigit = (s: string): boolean => /\d/.test(s);
const hasLetterAndDigit = (s: string): boolean => /\d/.test(s) && /[A-Za-z]/.test(s);

const SECRET_PATTERNS: readonly SecretPattern[] = [
  // OpenAI (`sk-…`, `sk-proj-…`, `sk-svcacct-…`) and Anthropic (`sk-ant-api03-…`). Real keys always mix
  // digits in; requiring one keeps long kebab-case words that happen to start with `sk-` out.
  { hints: ['sk-'], re: new RegExp(String.raw`${KEY_LEFT}sk-[A-Za-z0-9_-]{20,}`, 'g'), check: hasDigit },
  // AWS access key ids (long-term AKIA, temporary ASIA).
  { hints: ['AKIA', 'ASIA'], re: new RegExp(String.raw`(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])`, 'g') },
  // GitHub classic tokens and fine-grained PATs.
  { hints: ['gh'], re: new RegExp(String.raw`${KEY_LEFT}gh[pousr]_[A-Za-z0-9]{30,}${KEY_RIGHT}`, 'g') },
  { hints: ['github_pat_'], re: new RegExp(String.raw`${KEY_LEFT}github_pat_[A-Za-z0-9_]{22,}`, 'g') },
  // Slack bot/app/user/refresh tokens.
  { hints: ['xox'], re: new RegExp(String.raw`${KEY_LEFT}xox[baprs]-[A-Za-z0-9-]{10,}`, 'g'), check: hasDigit },
  // Stripe secret, restricted and publishable keys (test keys too: `sk_test_` is just as secret).
  {
    hints: ['_live_', '_test_'],
    re: new RegExp(String.raw`${KEY_LEFT}(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}${KEY_RIGHT}`, 'g'),
    check: hasDigit,
  },
  // Google API keys.
  { hints: ['AIza'], re: new RegExp(String.raw`${KEY_LEFT}AIza[0-9A-Za-z_-]{35}${KEY_RIGHT}`, 'g') },
  // JWTs: a base64url JSON header (`eyJ` = `{"`), a payload and a signature (empty for alg=none).
  {
    hints: ['eyJ'],
    re: new RegExp(String.raw`${KEY_LEFT}eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*${KEY_RIGHT}`, 'g'),
  },
  // Bearer tokens, in a header (`Authorization: Bearer …`) or on their own. Only the token is redacted
  // so the surrounding prose/code still reads. A token has to be long and contain a digit, or the
  // phrase "the bearer of bad news" would be one.
  {
    hints: ['earer', 'EARER'],
    re: /\b(?:[Bb]earer|BEARER)[ \t]{1,8}([A-Za-z0-9._~+\/-]{16,}=*)/g,
    tokenGroup: true,
    check: hasLetterAndDigit,
  },
];

// PEM private keys: `-----BEGIN RSA PRIVATE KEY-----`, `…EC…`, `…OPENSSH…`, `…ENCRYPTED…`, plain `PRIVATE KEY`.
const PEM_BEGIN_RE = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----/g;
const PEM_END_RE = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----/y;
// A key body is ≤ ~6 KB even for RSA-8192 with encryption headers; never search further than this.
const PEM_MAX_BODY = 16_384;
// What follows a BEGIN line when the END line was cut off: base64 lines and `Key: value` headers.
const PEM_BODY_RE = /(?:\r?\n(?:[A-Za-z0-9+/=]+(?=\r?\n|$)|[A-Za-z-]+: [^\r\n]*))*/y;

function findPem(text: string, out: PiiMatch[]): void {
  if (text.indexOf('PRIVATE KEY-----') === -1) return;
  PEM_BEGIN_RE.lastIndex = 0;
  // The next `-----END ` at or after the current position, cached so that many BEGIN lines without END
  // lines cost one forward scan in total, not one scan each.
  let nextEnd = -2;
  let m: RegExpExecArray | null;
  while ((m = PEM_BEGIN_RE.exec(text)) !== null) {
    const start = m.index;
    const afterBegin = start + m[0].length;
    if (nextEnd !== -1 && nextEnd < afterBegin) nextEnd = text.indexOf('-----END ', afterBegin);
    let end = -1;
    if (nextEnd !== -1 && nextEnd - afterBegin <= PEM_MAX_BODY) {
      PEM_END_RE.lastIndex = nextEnd;
      if (PEM_END_RE.test(text)) end = PEM_END_RE.lastIndex;
    }
    if (end === -1) {
      // A truncated paste is still a leaked key: take the header and whatever key material follows.
      PEM_BODY_RE.lastIndex = afterBegin;
      PEM_BODY_RE.test(text);
      end = Math.max(afterBegin, PEM_BODY_RE.lastIndex);
    }
    out.push({ kind: 'api_key', start, end });
    PEM_BEGIN_RE.lastIndex = end;
  }
}

function findSecrets(text: string, out: PiiMatch[]): void {
  const cands: PiiMatch[] = [];
  findPem(text, cands);
  for (const p of SECRET_PATTERNS) {
    if (!p.hints.some((h) => text.indexOf(h) !== -1)) continue;
    p.re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = p.re.exec(text)) !== null) {
      const secret = p.tokenGroup ? (m[1] as string) : m[0];
      if (p.check && !p.check(secret)) continue;
      const end = m.index + m[0].length;
      cands.push({ kind: 'api_key', start: end - secret.length, end });
    }
  }
  pushResolved(cands, out);
}

// ---------------------------------------------------------------------------------------------------
// Shared plumbing

function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

function collect(
  text: string,
  re: RegExp,
  kind: PiiKind,
  out: PiiMatch[],
  check?: (m: RegExpExecArray) => boolean,
): void {
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (check && !check(m)) continue;
    out.push({ kind, start: m.index, end: m.index + m[0].length });
  }
}

/**
 * Appends `cands` (one kind, possibly overlapping because several regexes fed it) to `out` without
 * overlaps: sorted by start, and of two overlapping candidates the earlier-starting, then longer, wins.
 */
function pushResolved(cands: PiiMatch[], out: PiiMatch[]): void {
  if (cands.length === 0) return;
  cands.sort((a, b) => a.start - b.start || b.end - a.end);
  let lastEnd = -1;
  for (const c of cands) {
    if (c.start >= lastEnd) {
      out.push(c);
      lastEnd = c.end;
    }
  }
}

const FINDERS: Readonly<Record<PiiKind, (text: string, out: PiiMatch[]) => void>> = {
  api_key: findSecrets,
  email: findEmails,
  credit_card: findCards,
  ssn: (text, out) => {
    if (text.indexOf('-') !== -1) collect(text, SSN_RE, 'ssn', out);
  },
  phone: findPhones,
  ip: findIps,
};

/**
 * Keeps the matches of `next` (sorted, non-overlapping) that do not overlap any of `kept` (sorted,
 * non-overlapping, higher priority) and merges them in; linear in the two lengths, so even a text with
 * tens of thousands of matches resolves quickly.
 */
function mergeLowerPriority(kept: PiiMatch[], next: PiiMatch[]): PiiMatch[] {
  if (next.length === 0) return kept;
  if (kept.length === 0) return next;
  const merged: PiiMatch[] = [];
  let k = 0;
  for (const n of next) {
    while (k < kept.length && kept[k].end <= n.start) merged.push(kept[k++]);
    // kept[k] (if any) ends after n starts; n survives only if it also ends before kept[k] starts.
    if (k < kept.length && kept[k].start < n.end) continue;
    merged.push(n);
  }
  while (k < kept.length) merged.push(kept[k++]);
  return merged;
}

/**
 * Finds PII of the given kinds: non-overlapping, sorted by start. Overlaps between kinds go to the more
 * specific kind (api_key > email > credit_card > ssn > phone > ip).
 */
export function findPii(text: string, kinds: readonly PiiKind[]): PiiMatch[] {
  let result: PiiMatch[] = [];
  if (text.length === 0) return result;
  for (const kind of PRIORITY) {
    if (!kinds.includes(kind)) continue;
    const found: PiiMatch[] = [];
    FINDERS[kind](text, found);
    result = mergeLowerPriority(result, found);
  }
  return result;
}

/** Replaces every match with its placeholder (`[EMAIL]`, …) and counts matches per kind. */
/**
 * `json`: the text is a JSON document (a call's arguments) and must stay one: a match outside its string
 * literals (a card or phone number given as a bare JSON number) becomes a quoted placeholder, not a bare word.
 */
export function redactPii(text: string, kinds: readonly PiiKind[], opts: { json?: boolean } = {}): PiiRedaction {
  const matches = findPii(text, kinds);
  if (matches.length === 0) return { text, counts: {} };
  const bare = opts.json ? outsideJsonStrings(text) : null;
  const counts: Partial<Record<PiiKind, number>> = {};
  const parts: string[] = [];
  let pos = 0;
  for (const m of matches) {
    const placeholder = PII_PLACEHOLDER[m.kind];
    parts.push(text.slice(pos, m.start), bare !== null && bare(m.start) ? `"${placeholder}"` : placeholder);
    counts[m.kind] = (counts[m.kind] ?? 0) + 1;
    pos = m.end;
  }
  parts.push(text.slice(pos));
  return { text: parts.join(''), counts };
}

/**
 * For a text that parses as JSON, whether an offset lies outside its string literals (null for any other
 * text: it is redacted as plain text).
 */
function outsideJsonStrings(text: string): ((at: number) => boolean) | null {
  try {
    JSON.parse(text);
  } catch {
    return null;
  }
  // String literals as [start, end) ranges, in order; a valid document has no quote outside them.
  const ranges: number[] = [];
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) {
    let j = i + 1;
    while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
    ranges.push(i, j + 1);
    i = j;
  }
  return (at) => {
    let lo = 0;
    let hi = ranges.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[2 * mid + 1]! <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo === ranges.length / 2 || at < ranges[2 * lo]!;
  };
}
