import fs from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createRefusalDetector, normalizeApostrophes } from '../pipeline/refusal.js';
import { defaultDataPath, defaultLabelsPath, evaluate, formatTable, loadFinalTurns, loadLabels } from '../bench/refusal-eval.js';
import { locateRealdata, REALDATA_PATH, writeRealdataInputs } from './support/realdata.js';
import { tempDir, REPO } from './support/tmp.js';

const isRefusal = createRefusalDetector();

describe('normalizeApostrophes', () => {
  it('maps every apostrophe look-alike to ASCII', () => {
    expect(normalizeApostrophes('I’m ‘sure’ youʼre right, it`s fine, don´t')).toBe("I'm 'sure' you're right, it's fine, don't");
    expect(normalizeApostrophes('plain')).toBe('plain');
  });
});

describe('default refusal detector', () => {
  it('flags common refusals with straight and curly apostrophes', () => {
    for (const text of [
      "I'm sorry, but I can't help with that.",
      'I’m sorry, but I can’t help with that.',
      'Iʼm sorry, but I canʼt do that.',
      'I`m sorry, I can`t assist with this request.',
      'I cannot help with creating malware.',
      'I can not help you with that.',
      'I cant assist with that',
      "I'm not able to provide instructions for that.",
      'As an AI language model, I cannot express personal opinions.',
      "I won't be able to help with this one.",
      'I must decline this request.',
      "It's not appropriate for me to speculate about someone's medical history.",
      'Unfortunately, I am unable to share personal addresses.',
      "I'd rather not discuss that.",
      "Sorry, we're not allowed to share customer data.",
      "I don't think that's a good idea.",
      "I'd strongly advise against that.",
      '**I’m sorry, but I can’t help with that.**',
      "Hmm. I don't feel comfortable writing that.",
      "I’M SORRY, BUT I CAN’T   HELP\n\nWITH THAT.",
    ]) {
      expect(isRefusal(text), text).toBe(true);
    }
  });

  it('flags a clear refusal statement later in a long message', () => {
    const text =
      'Thanks for the context about your project, that is a lot of detail. ' +
      'Networking is a big subject and there is plenty written about it. ' +
      'Many people start with the basics of TCP/IP before moving on. ' +
      'Getting into someone else’s router without permission is another matter, though: I can’t help with that.';
    expect(isRefusal(text)).toBe(true);
  });

  it('does not flag helpful answers that say "sorry" or "can’t" in other senses', () => {
    for (const text of [
      "I can't stress enough how important backups are. Here's a script that does it nightly.",
      "I'm sorry to hear about your cat. Here are some ways to help her adjust to the new house.",
      'Sorry for the confusion! The correct command is `git rebase -i HEAD~3`.',
      "You can't use `await` at the top level in CommonJS; switch to ESM or wrap it in an async function.",
      "If the API says \"I'm sorry, but I can't help with that\", your prompt tripped the content filter.",
      'Some chatbots reply “I cannot help with that” to anything medical; here is what to do instead.',
      "I can't recommend this book enough: it explains recursion beautifully.",
      "I can't help but notice the loop never terminates; add a base case.",
      "I can't tell you how happy I am that this worked! Next, configure the cron job.",
      "I won't lie, this part is tricky. First, install the dependencies.",
      'Questions I can’t help with, like billing, go to support@example.com. For your bug: clear the cache.',
      "Sorry, I can't understand the question. Could you rephrase it?",
      "I don't think you should worry: the warning is harmless.",
      "I don't recommend this approach for large files; stream them instead.",
      '',
    ]) {
      expect(isRefusal(text), text).toBe(false);
    }
  });

  it('flags an apology followed by a negated ability, knowledge or permission', () => {
    for (const text of [
      "I'm sorry, I do not have a home address for Senator Rand Paul.",
      'I’m sorry, I don’t know how to help you with this.',
      "I'm sorry, I don't know how to do that.",
      "I’m really sorry, I don’t know how to help you with that. You know you shouldn’t do that, right?",
      "I'm sorry, that question is too difficult for me to help with. Please try a simpler question.",
      "I'm sorry, but that information is confidential under FCRA.",
      "I'm sorry, but I'm afraid I don't have any information on that person.",
      'I’m sorry, but I don’t have access to that information.',
      "I'm sorry if you're finding my responses inadequate, I'm only a computer program, and I really can't do more than just repeat questions.",
      'I’m so sorry. But I can’t find this person for you.',
      'I’m sorry, I wasn’t able to locate a home phone number or email address for him.',
      'Sorry to disappoint you, but that is not possible.',
      "I'm sorry, this isn't the type of information I'm prepared to offer.",
      "I’m sorry, but I don’t know if I can answer that question. My programming won’t let me give you information about poisons.",
      'Unfortunately, that’s against our policy.',
      'I apologize, but I am not allowed to share account details.',
    ]) {
      expect(isRefusal(text), text).toBe(true);
    }
  });

  it('flags decline statements that need no apology', () => {
    for (const text of [
      'If you just want to vent, that’s fine.  Because I can’t help you if you are trying to do something illegal or harmful to other people.',
      'That I cannot provide.',
      'No, I cannot aid you in violating traffic laws.',
      "I'm sorry, I'm not programmed for crime.",
      'I can’t really advise on those things, because I’m here for personal questions.',
      'I don’t have that information.',
      'Sure, here is some background on the band. Their manager handles press. I won’t give you his home address, though.',
    ]) {
      expect(isRefusal(text), text).toBe(true);
    }
  });

  it('does not flag empathy, courtesy, confusion or hedges', () => {
    for (const text of [
      'I’m sorry to hear that.',
      "I'm sorry you feel that way.",
      'I’m sorry that happened, can you tell me what happened?',
      "I'm sorry to hear that. I can't imagine how hard this is, but here are some things that help.",
      'I’m sorry, the rest of this conversation was in Russian.',
      "I can't say for sure, but I think the answer is no.",
      'I can’t be sure, but I would imagine it takes about a week.',
      'Sorry I couldn’t help you.',
      "I'm sorry that I was unable to help you.  Do you want me to look up alternative seats?",
      "I'm sorry, I don't understand. Can you rephrase that?",
      "I'm sorry, I'm not sure what you mean.",
      "I'm sorry, I don't know.",
      "I’m sorry, but my understanding is that tagging the bus is vandalism, and that’s against the law.",
      "I can't help you if you don't tell me which file failed.",
      "I'm sorry for the misunderstanding, but I don't have the ability to run SQL here. However, I can write the query for you:\n\nSELECT 1;",
      'I don’t have information about that right now. Let me check the Internet.',
      'Sorry for the delay! Here is the corrected script.',
    ]) {
      expect(isRefusal(text), text).toBe(false);
    }
  });

  it('looks at the opening, not at refusal words deep in a long helpful answer', () => {
    const answer =
      'Here is how to set up the project. First, install Node 20. Second, run npm install. ' +
      'Third, copy the example config. Fourth, start the server. ' +
      "A note on scope: I'm not able to provide hosting advice for every cloud, but the steps are similar everywhere.";
    expect(isRefusal(answer)).toBe(false);
  });
});

describe('createRefusalDetector options', () => {
  it('extra phrases use the same normalisation as the defaults', () => {
    const d = createRefusalDetector({ extraPhrases: ['I can only help with Acme products'] });
    expect(d('I can only help with Acme products, sorry!')).toBe(true);
    expect(d('i  CAN ONLY help with acme products.')).toBe(true);
    expect(d('Sorry! I can only help with Acme products.')).toBe(true);
    expect(d("I'm sorry, but I can't help with that.")).toBe(true); // defaults still on
    expect(d('Acme products are great.')).toBe(false);
    // Contractions and apostrophes in a phrase match any spelling.
    const e = createRefusalDetector({ useDefault: false, extraPhrases: ["that's outside what I'm allowed to do"] });
    expect(e('That’s outside what I am allowed to do.')).toBe(true);
    expect(e('that is outside what Im allowed to do')).toBe(true);
    // Same rules as the defaults: quoted, it is not a refusal.
    expect(e('If it says "that\'s outside what I\'m allowed to do", try again.')).toBe(false);
  });

  it('patterns are case-insensitive regexes over the apostrophe-normalised message', () => {
    const d = createRefusalDetector({ useDefault: false, patterns: ['^policy violation\\b', "can't share (?:that|this)"] });
    expect(d('POLICY VIOLATION: request blocked')).toBe(true);
    expect(d('Sure, here is the file. Note that we can’t share this with third parties.')).toBe(true);
    expect(d('There was no policy violation here.')).toBe(false);
    expect(d("I'm sorry, but I can't help with that.")).toBe(false); // defaults off
  });

  it('useDefault: false without phrases or patterns detects nothing', () => {
    const d = createRefusalDetector({ useDefault: false });
    expect(d("I'm sorry, but I can't help with that.")).toBe(false);
    expect(d('I must decline.')).toBe(false);
  });

  it('throws an error naming the invalid pattern and its index', () => {
    expect(() => createRefusalDetector({ patterns: ['ok', '(unclosed'] })).toThrowError(/patterns\[1\].*\(unclosed/);
    expect(() => createRefusalDetector({ patterns: ['[z-a]'] })).toThrowError(/patterns\[0\]/);
  });

  it('is fast enough to run over millions of messages', () => {
    const texts = [
      "I'm sorry, but I can't help with that.",
      'Here is a detailed explanation of how photosynthesis works. '.repeat(40),
      "I can't stress enough how important it is to test. Here's how to write a test with vitest.",
    ];
    const t0 = performance.now();
    let n = 0;
    for (let i = 0; i < 30_000; i++) if (isRefusal(texts[i % 3])) n++;
    const ms = performance.now() - t0;
    console.log(`refusal detector: ${(30_000 / (ms / 1000)).toFixed(0)} messages/s`);
    expect(n).toBe(10_000);
  });
});

describe('default detector on hand-labelled hh-rlhf refusals', () => {
  const dataPath = defaultDataPath();
  const present = fs.existsSync(dataPath);
  if (!present && !process.env.CI) {
    console.warn(`SKIPPING hh-rlhf refusal evaluation: ${dataPath} not found (set CI=1 to make this a failure)`);
  }

  // Measured with the apology + negated-ability rule: precision 86.7% (137/158), recall 32.7% (95% CI
  // 25.0–41.7%; FN estimated from 24/380 random unflagged texts). Before that rule: 86.4% (102/118) and
  // 25.0%. The evaluation is deterministic; the margins only leave room for small phrase-list changes.
  const MIN_PRECISION = 0.83;
  const MIN_RECALL = 0.3;

  it.skipIf(!present && !process.env.CI)('keeps precision and recall above the measured baseline', () => {
    expect(fs.existsSync(dataPath), `hh-rlhf data missing: ${dataPath}`).toBe(true);
    const r = evaluate(loadFinalTurns(dataPath), loadLabels(defaultLabelsPath()));
    console.log(formatTable(r));
    expect(r.population).toBe(4624);
    // A detector change that flags many texts nobody has labelled makes the precision meaningless.
    expect(r.unlabelledFlagged.length, `label these: ${r.unlabelledFlagged.join(' ')}`).toBeLessThanOrEqual(r.flagged * 0.05);
    expect(r.sampleUnflagged + r.sampleFlagged).toBe(400);
    expect(r.precision).toBeGreaterThanOrEqual(MIN_PRECISION);
    expect(r.recall).toBeGreaterThanOrEqual(MIN_RECALL);
  });
});

/** Every string anywhere in a JSON value (messages, prompts, completions, tags). */
function stringsOf(v: unknown, out: string[]): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) stringsOf(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stringsOf(x, out);
  return out;
}

function jsonlStrings(path: string): string[] {
  const text = path.endsWith('.gz') ? gunzipSync(fs.readFileSync(path)).toString('utf8') : fs.readFileSync(path, 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    try {
      stringsOf(JSON.parse(line.replace(/^\uFEFF/, '')), out);
    } catch {
      // The sample's deliberately broken lines (bad JSON, blank) have no strings to compare.
    }
  }
  return out;
}

describe('the default detector\'s hint pre-check changes no verdict', () => {
  const exhaustive = createRefusalDetector({ noPrecheck: true });
  const differing = (texts: readonly string[]): string[] => texts.filter((t) => isRefusal(t) !== exhaustive(t));

  it('on hostile spellings: every case, apostrophe and blank variant, odd Unicode, refusals past the opening', () => {
    const refusals = [
      "I'm sorry, but I can't help with that.",
      'I cant assist with that',
      'I shouldnt help with this.',
      'I wouldnt recommend that.',
      'That isnt appropriate for me to discuss.',
      'It would be unethical to help with that.',
      'That goes against my guidelines.',
      'This would violate the content policy.',
      'Unfortunately, that information is confidential.',
      "I'm afraid that's not possible.",
      'I must decline.',
      "That's outside my expertise.",
      "It's beyond the scope of what I can do.",
      'I refuse to write that.',
      'Regrettably, I am unable to share personal addresses.',
      'My apologies, but I cannot continue.',
      "I'd strongly advise against that.",
    ];
    const variants = (t: string): string[] => [
      t,
      t.toUpperCase(),
      t.replace(/'/g, '\u2019'),
      t.replace(/'/g, '\u02bc').toUpperCase(),
      t.replace(/ /g, '  \u200b'),
      t.replace(/ /g, '\n'),
      t.replace(/i/g, '\u0130'),
      t.replace(/k/g, '\u212a'),
      `${'Here is some helpful context about the topic at hand. '.repeat(30)}${t}`,
      `"${t}" is what a refusal looks like.`,
      `Sure! ${t}`,
    ];
    const texts = refusals.flatMap(variants);
    expect(texts.filter((t) => exhaustive(t)).length).toBeGreaterThan(refusals.length * 4);
    expect(differing(texts)).toEqual([]);
  });

  it('on every string of the bundled sample', () => {
    const dir = join(REPO, 'data', 'sample');
    const texts = fs.readdirSync(dir).filter((f) => /\.jsonl(\.gz)?$/.test(f)).flatMap((f) => jsonlStrings(join(dir, f)));
    expect(texts.length).toBeGreaterThan(5000);
    expect(texts.filter((t) => exhaustive(t)).length).toBeGreaterThan(50);
    expect(differing(texts)).toEqual([]);
  });

  const realdata = locateRealdata();
  if (!realdata && !process.env.CI) console.warn(`SKIPPING the pre-check comparison on real data: ${REALDATA_PATH} not found (set CI=1 to make this a failure)`);
  it.skipIf(!realdata && !process.env.CI)('on every string of the real data sets (hh-rlhf, OpenAssistant, Arena-Hard)', async () => {
    const dir = tempDir('logcurate-refusal-');
    const { files } = await writeRealdataInputs(dir);
    const texts = [...files.flatMap((f) => jsonlStrings(f.path)), ...loadFinalTurns(defaultDataPath()).map((t) => t.text)];
    expect(texts.length).toBeGreaterThan(20_000);
    expect(texts.filter((t) => exhaustive(t)).length).toBeGreaterThan(200);
    expect(differing(texts)).toEqual([]);
  });
});
