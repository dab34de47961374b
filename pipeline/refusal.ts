/**
 * Refusal detection for `rebalance_refusals` (SPEC §3): does a conversation's final assistant message
 * decline what was asked?
 *
 * The default detector is a curated list of refusal phrasings. A phrase only counts when
 * - it starts a clause (start of text, after sentence punctuation, a comma, a line break, or a lead-in
 *   word such as "but", "sorry", "unfortunately"), so "questions I can't help with" or "and I can't
 *   stress enough" do not trigger it;
 * - it is not inside a double-quoted span, so an answer that quotes a refusal is not one;
 * - it is in the message's opening (first few sentences), where refusals are stated; deeper in a long
 *   helpful answer the same words are usually about a sub-point. A handful of unambiguous statements
 *   ("I must decline", "I can't help with that", "I can't help you if …", "I won't give you his address")
 *   count anywhere.
 * An apology or regret ("I'm sorry", "Sorry", "I apologize", "Unfortunately", "I'm afraid") near the start
 * is a refusal when the same or the next sentence states a negated ability, knowledge or permission
 * ("I'm sorry, I don't know how to help with this", "Sorry. But I can't find this person for you", "I'm
 * sorry, but that information is confidential"); on its own it is empathy or politeness ("I'm sorry to
 * hear that", "I'm sorry you feel that way", "Sorry I couldn't help you").
 * Matching is case-insensitive, apostrophe-insensitive (’ ‘ ʼ ` ´ ' are one character), accepts the
 * usual contraction spellings (can't / cant / cannot / can not, won't / will not, I'm / I am, …) and
 * ignores differences in whitespace.
 *
 * Measured precision/recall on hand-labelled hh-rlhf data: see bench/refusal-eval.ts.
 */

export interface RefusalDetectorOptions {
  /** Include the curated default phrase list (default true). */
  readonly useDefault?: boolean;
  /** More phrases, matched under the same rules as the default ones (clause start, opening, unquoted). */
  readonly extraPhrases?: readonly string[];
  /**
   * Regular expression sources, matched case-insensitively anywhere in the whole message after
   * apostrophe and whitespace normalisation (so write `'` for any apostrophe and one space for any run
   * of blanks). Anchor with `^` to mean "the message starts with".
   */
  readonly patterns?: readonly string[];
  /** Skip the cheap check that lets most messages bypass phrase matching (tests compare both paths). */
  readonly noPrecheck?: boolean;
}

const APOSTROPHES_RE = /[\u2019\u2018\u02BC`\u00B4]/g;

/** Maps every apostrophe look-alike (’ ‘ ʼ ` ´) to the ASCII `'`. */
export function normalizeApostrophes(s: string): string {
  return s.replace(APOSTROPHES_RE, "'");
}

/**
 * What phrases are matched against: lower case, one kind of apostrophe, one kind of double quote,
 * blanks collapsed to one space and line breaks kept (a line break also ends a clause).
 */
function normalizeText(s: string): string {
  return normalizeApostrophes(s)
    .toLowerCase()
    .replace(/[\u201C\u201D\u201E\u00AB\u00BB]/g, '"')
    .replace(/[ \t\f\v\u00A0\u2000-\u200B\u202F\u205F\u3000]+/g, ' ')
    .replace(/ ?[\r\n][\s]*/g, '\n')
    .trim();
}

/** Same normalisation for user-supplied patterns, minus lower-casing (they are compiled with `i`). */
function normalizeForPatterns(s: string): string {
  return normalizeApostrophes(s)
    .replace(/[\u201C\u201D\u201E]/g, '"')
    .replace(/[ \t\f\v\u00A0\u2000-\u200B\u202F\u205F\u3000]+/g, ' ')
    .replace(/ ?[\r\n][\s]*/g, '\n')
    .trim();
}

// Contractions, written once so every phrase accepts every spelling.
const CANT = String.raw`(?:can'?t|can ?not)`;
const WONT = String.raw`(?:won'?t|will not)`;
const DONT = String.raw`(?:don'?t|do not)`;
const IM = String.raw`(?:i'?m|i am)`;
const ID = String.raw`(?:i'?d|i would)`;
const ILL = String.raw`(?:i'?ll|i will)`;
const ITS = String.raw`(?:it'?s|it is|that'?s|that is|this is)`;

/** "I can't", "I'm not able to", "I don't think I should", … — the negated ability/willingness. */
const I_NEG = String.raw`(?:i (?:${CANT}|${WONT}|${DONT} think i (?:can|should|will)|${DONT} want to|shouldn'?t|should not|must not|refuse to|have to decline to|must decline to|${WONT} be able to|am unable to|am not able to|am not going to|am not comfortable|am not willing to|would rather not|would prefer not to)|${IM} (?:unable to|not able to|not going to|not comfortable|not willing to|afraid i (?:${CANT}|${WONT}))|${ID} (?:rather not|prefer not to)|${ILL} not)`;

/**
 * What is refused. Verbs whose negation is common in helpful prose are narrowed: "can't help but",
 * "can't recommend it enough", "can't tell you how much", "won't give up", "can't wait" (not listed).
 */
const REFUSED = String.raw`(?:help(?! but| feel| think| notice| wonder| it|(?: you)? unless|(?: you)? if you (?:${DONT}|${CANT}|${WONT}|didn'?t|did not) )|assist|aid (?:you|in|with)|provide|give(?! up)|offer|share|supply|create|write|generate|produce|comply|fulfill|participate|engage|condone|encourage|endorse|promote|facilitate|support (?:that|this|you in|any)|advise (?:on|you|that|this|it)|answer (?:that|this|your|the question|such|questions? (?:like|about))|tell you (?:how to|where to|where you can|how you can|that|this)|explain how to|describe how to|teach you|show you how to|recommend(?![^.!?\n]{0,60}\benough\b)|discuss|talk about|continue (?:this|with this)|respond(?= to (?:that|this|it|such|your)|[.!?,;]|$)|look (?:up|for|into) (?:that|this|such|an?|the|any|his|her|their|your|personal|private)|find (?:that|this|such|the|any|his|her|their|your|contact|personal|private|information)|locate|work with you on|go into (?:that|this|detail|details|specifics)|be (?:of )?(?:help|assistance|part of|involved)|go along with|let you|do (?:that|this|it|so|what you|anything like|something like))`;

/** "I can't really advise you on …", "I won't just give you …": an adverb between the negation and the verb. */
const ADVERB = String.raw`(?:really |actually |just |simply |personally |even )?`;

/**
 * "Sorry, I can't understand / hear you / follow" is confusion, and "sorry, I won't keep you" is
 * politeness; neither declines anything.
 */
const NOT_CONFUSION = String.raw`(?! (?:really |quite )?(?:understand|hear|make out|follow|tell (?:what|if|whether)|keep you|wait|believe|thank|stress|imagine|see what))`;

/** Phrases that count at a clause start in the opening of the message. */
const OPENING_PHRASES: readonly string[] = [
  // "I can't help with", "I'm not able to provide", "I won't be able to help", "I don't think I should
  // assist", "I'd rather not discuss", …
  String.raw`${I_NEG} ${ADVERB}${REFUSED}`,
  // "That I cannot provide.", "This I won't do." — the object fronted, the clause ending on the verb.
  String.raw`(?:that|this) i (?:${CANT}|${WONT}) (?:provide|do|share|give you|tell you|answer|help (?:with|you with))(?=[.!?;]|$)`,
  // "I'm sorry, but I can't …", "Sorry, I cannot …", "I'm afraid I won't …", "Unfortunately, I'm unable
  // to …": an apology or regret followed by a negated ability is a refusal whatever the verb.
  String.raw`(?:${IM} )?(?:so |very |really |truly |terribly )?(?:sorry|afraid|apologize|apologise)(?: for the inconvenience)?,? (?:but |though )?(?:${IM} )?(?:i (?:${CANT}|${WONT}|must not|am unable|am not able)|${IM} (?:unable|not able)|that'?s not (?:possible|something))${NOT_CONFUSION}`,
  String.raw`(?:my )?apologies,? (?:but )?i (?:${CANT}|${WONT}|am unable|am not able)`,
  String.raw`(?:unfortunately|regrettably),? (?:i (?:${CANT}|${WONT}|am unable|am not able)|${IM} (?:unable|not able)|that'?s not something)${NOT_CONFUSION}`,
  // The same refusals in the first person plural, as support bots write them: "we're not allowed to".
  String.raw`(?:we (?:${CANT}|${WONT}|are unable to|are not able to|are not allowed to|are not permitted to)|we'?re (?:unable to|not able to|not allowed to|not permitted to)) ${REFUSED}`,
  // "As an AI language model, I cannot …", "As an AI, I'm not able to …".
  String.raw`as an ai(?: language model| assistant| model| chatbot)?,? (?:i (?:${CANT}|${DONT}|${WONT}|must not|am not able|am unable|am not allowed|am not permitted)|${IM} (?:not able|unable|not allowed|not permitted|not programmed))`,
  // "I must decline", "I'll have to decline", "I respectfully decline".
  String.raw`i (?:must|have to|need to|will have to|'?ll have to|am going to have to|'?m going to have to|respectfully|politely|will|'?ll|am going to|'?m going to) decline`,
  String.raw`i decline to`,
  // "I'm not allowed to", "I'm not programmed to", "I'm not comfortable with that", "I don't feel
  // comfortable", "I'm not in a position to".
  String.raw`${IM} not (?:allowed|permitted|authorized|programmed|designed|able|in a position) to (?:${REFUSED}|do)`,
  // "I'm not programmed for crime", "I'm not designed for that".
  String.raw`${IM} not (?:programmed|designed|built|made) for\b`,
  // Advising against instead of answering: "I'd strongly advise against that", "I wouldn't recommend
  // doing that", "I don't think that's a good idea", "I don't think you should do that".
  String.raw`(?:${ID}|i) (?:strongly |really |definitely )?(?:advise|recommend|caution) against`,
  // Only with the object ending the clause: "I don't recommend this approach for big files" is advice.
  String.raw`i (?:wouldn'?t|would not|${DONT}) (?:advise|recommend|suggest) (?:that|this|it|doing (?:that|this|it|so))(?=[.!,;]|$)`,
  String.raw`i ${DONT} think (?:that'?s|that is|it'?s|it is|it would be|this is) (?:a good idea|wise|a wise idea|appropriate|something i (?:can|should))`,
  String.raw`i ${DONT} think you should(?=[.!,;]| do (?:that|this|it)| try (?:that|this|it)| be doing)`,
  String.raw`i (?:${DONT}|do not) feel comfortable`,
  String.raw`${IM} not (?:comfortable|okay|ok) (?:with|doing|helping|providing|giving|writing|sharing|answering|talking)`,
  // "It's not appropriate for me to", "That wouldn't be ethical for me to", "That's not something I can".
  String.raw`(?:it|that|this)(?: would not be| wouldn'?t be| is not|'?s not| isn'?t) (?:appropriate|ethical|responsible|right|okay|ok|possible|safe|proper) for me to`,
  String.raw`(?:it|that|this) (?:would be|is|'?s) (?:unethical|inappropriate|irresponsible|wrong|illegal|not right) (?:for me )?to (?:help|assist|provide|give|share|tell|write|create|do that)`,
  String.raw`${ITS} not something (?:i|that i) (?:can|could|will|would|am able to|'?m able to|am comfortable|'?m comfortable|feel comfortable|am willing|'?m willing|should)`,
  // "That's not my place to say", "That's outside (of) my expertise", "beyond the scope of what I can do".
  String.raw`${ITS} (?:not (?:my (?:place|area|field)|within (?:my|the scope)|in my (?:power|capacity|programming))|(?:outside|beyond) (?:of )?(?:my|the scope of|what i))`,
  // "I don't have that information", "I don't have access to his records": what was asked for is not
  // available from me. (Not "I don't have information about that right now, let me check".)
  String.raw`i ${DONT} (?:really |actually )?have (?:access to (?:that|this|such|personal|private|his|her|their|your|those|these)|(?:that|this|such) (?:information|info|data|kind of information|sort of information))`,
  // "I can't and won't …".
  String.raw`i ${CANT} and ${WONT}`,
];

/** Statements clear enough to count wherever they start a clause, not just in the opening. */
const ANYWHERE_PHRASES: readonly string[] = [
  String.raw`${I_NEG} ${ADVERB}(?:help|assist)(?: you)? with (?:that|this|your request|such|requests? like|anything (?:like|illegal|harmful|that)|something like|illegal|harmful)\b`,
  // "I can't help you if you are trying to …", "I won't help when it hurts someone".
  // Not "I can't help you if you don't tell me more", which asks for details.
  String.raw`${I_NEG} ${ADVERB}(?:help|assist)(?: you)? (?:if|when) (?!you (?:${DONT}|${CANT}|${WONT}|didn'?t|did not) )`,
  // "I can't give you his address", "I won't share that", "I'm not able to provide any details",
  // "I can't tell you how to …": declining to hand something over.
  String.raw`${I_NEG} ${ADVERB}(?:give you (?:that|this|any|the|his|her|their|personal|private|information|instructions|details|advice on how)|share (?:that|this|any|the|his|her|their|personal|private|information|details)|provide (?:that|this|any|you with|personal|private|information|instructions|details)|tell you (?:how to|where to|where you can|how you can|his|her|their))`,
  String.raw`i (?:must|have to|will have to|'?ll have to|respectfully) decline`,
  String.raw`i (?:${CANT}|${WONT}) (?:comply with|fulfill) (?:that|this|your|such)`,
];

const ANYWHERE_HINT_RE = /decline|help|assist|comply|fulfil|give|share|provide|tell/i;

/**
 * Every default phrase (opening, free, apology, anywhere) needs one of these where it matches: a negation
 * (n't with any apostrophe, the apostrophe-less contractions the phrases accept, "not"), a refusal or policy
 * word, or an apology. Normalisation only lower-cases letters, unifies apostrophes and collapses blanks, so
 * when the lower-cased raw text has none, no default phrase can match it and normalising and matching are
 * skipped — most helpful answers. Tested against the full path on every message of the sample and the real data sets.
 */
const OPENING_HINT_RE =
  /n['\u2019\u2018\u02bc`\u00b4]t|(?:can|won|don|shouldn|wouldn|couldn|wasn|isn|doesn|didn)t|not|unable|refus|declin|against|violat|sorry|apologi|unfortunately|regrettably|afraid|unethical|inappropriate|irresponsible|wrong|illegal|outside|beyond/;

/**
 * Phrases that are not tied to a clause start (they sit mid-sentence: "that is against my guidelines"),
 * checked in the opening.
 */
const FREE_PHRASES: readonly string[] = [
  String.raw`(?:goes|go|is|are|would be|'s) against (?:my|our|the) (?:programming|guidelines|principles|ethics|values|policies|policy|content policy|usage policies|terms|rules)`,
  String.raw`(?:violates?|would violate|is a violation of|in violation of) (?:my|our|the|openai'?s|anthropic'?s) (?:content |usage |use )?(?:polic(?:y|ies)|guidelines|terms)`,
];

/**
 * An apology or regret opening: "I'm sorry", "Sorry", "I apologize", "My apologies", "Unfortunately",
 * "I'm afraid". On its own it says nothing ("I'm sorry to hear that", "I'm sorry you feel that way",
 * "Sorry for the confusion"); it marks a refusal when a negated ability, knowledge or permission
 * (NEG_AFTER_APOLOGY) follows in the same sentence or the next one.
 */
const APOLOGY = String.raw`(?:(?:${IM} )?(?:so |very |really |truly |terribly |deeply |extremely )?sorry|i (?:do |must |sincerely |truly )?apologi[sz]e|(?:my )?apologies|unfortunately|regrettably|${IM} afraid)\b`;
/** The apology must start this close to the beginning of the message. */
const APOLOGY_MAX_START = 200;
/** How far after the apology the negated ability is looked for: to the end of the next sentence, capped. */
const APOLOGY_WINDOW_CHARS = 260;

/** Verbs of handing something over or doing the task; "understand", "hear", "imagine", "say for sure" are not among them. */
const APOLOGY_VERBS = String.raw`(?:${REFUSED}|answer|comment on|access|get (?:you|that|this|it|the|any|his|her|their)|do (?:much|more|anything|any more)|be used)`;

/**
 * What turns an apology into a refusal. Each alternative starts a word (checked by the caller).
 * - "I can't/won't/couldn't/wasn't able to/am not allowed to <verb>";
 * - "I don't know how to …", "I don't know if I can …", "I don't think I can …";
 * - "I don't have access / that information / any information on / a home address for …" (not "I don't
 *   have the ability to browse the web", which usually comes before help with the task);
 * - "I'm not able to / not allowed / not programmed / not in a position / not the right person";
 * - "that's not possible / not something I …/ outside my … / against my … / confidential / too difficult
 *   for me / not the type of information …", "that question is too difficult", "that information is
 *   confidential";
 * - "my programming won't let me", "my guidelines prohibit me".
 */
const NEG_AFTER_APOLOGY = [
  String.raw`i (?:really |just |simply |honestly )?(?:${CANT}|${WONT}|must not|shouldn'?t|should not|am unable to|am not able to|am not allowed to|am not permitted to|am not going to|'?m not going to|${WONT} be able to|am afraid i ${CANT}) ${ADVERB}${APOLOGY_VERBS}`,
  // A failed search ("I wasn't able to locate a phone number for him"), but not a look back at the
  // conversation ("Sorry I couldn't help you", "I'm sorry that I was unable to help"), which is a courtesy.
  String.raw`i (?:couldn'?t|could not|wasn'?t able to|was not able to|was unable to) (?:find|locate|look up|access)`,
  String.raw`i ${DONT} (?:really |actually )?(?:know how to (?:${APOLOGY_VERBS}|do|say|get|make)|know (?:if|whether) i (?:can|could|should)|think i (?:can|could|should) (?:${APOLOGY_VERBS}|do)|have (?:access|the (?:authority|right|permission)|permission|enough information|(?:any|that|this|such|the) (?:information|info|records?|data|details)|(?:information|info|records?|data|details) (?:on|about|for|regarding)|(?:a|an|the|any|his|her|their) (?:(?:home|personal|current|exact|private|contact|phone|mailing|email|street|cell|work|residential) )*(?:address|phone number|email|contact (?:info|information|details)) (?:for|of)))`,
  String.raw`${IM} (?:unable to|not able to)(?! (?:understand|hear|follow|make out|see what))`,
  String.raw`${IM} not (?:allowed|permitted|authorized|programmed|designed|built|comfortable|in a position|willing|the (?:right|best) (?:person|one|place|resource))\b`,
  String.raw`(?:that|this|it|which|(?:that|this|the|your|such) (?:question|request|information|info|topic|data|subject|kind of (?:question|request|information)))(?:'?s| is| would be| was)(?: really| just| simply)? (?:not (?:possible|appropriate|allowed|permitted|something (?:i|that i)|a (?:question|topic|subject|request) (?:i|that i)|(?:really )?(?:my|within my) (?:area|field|place|expertise|scope)|(?:information|info) (?:i|that i)|(?:the )?(?:type|kind|sort) of)|(?:outside|beyond) (?:of )?(?:my|the scope|what i)|against (?:my|our) |against the (?:rules|guidelines|polic)|confidential|private (?:information|info)|(?:too|very) (?:difficult|hard|complicated|complex) (?:for me|to answer|a question)|an? (?:unsuitable|inappropriate) (?:question|request|topic)|inappropriate|unsuitable)`,
  String.raw`(?:that|this|it|which)(?: isn'?t| is not| wouldn'?t be| would not be) (?:really |just )?(?:possible|appropriate|something (?:i|that i)|(?:the )?(?:type|kind|sort) of)`,
  String.raw`my (?:programming|guidelines|rules|policy|policies|creators?|developers?) (?:${WONT}|${DONT}|doesn'?t|does not) (?:let|allow|permit)`,
  String.raw`my (?:programming|guidelines|rules|policy|policies) (?:prohibits?|forbids?|prevents?)`,
];

/** Where a clause can start; phrases must be preceded by one of these (or by the start of the text). */
const CLAUSE_START = String.raw`(?<=^|[.!?;:,)\]*_#>\-\u2013\u2014\u2026\n] ?|\b(?:but|and|so|because|since|however|unfortunately|sadly|regrettably|honestly|frankly|though|also|sorry|apologies|no|nope|well|oh|okay|ok|hmm|hm|um|uh|yes|yeah|actually|still|now|look|listen|again|really) )`;

/** The opening: up to this many sentences, and never more than this many characters. */
const OPENING_SENTENCES = 3;
const OPENING_MAX_CHARS = 400;
/** Raw characters normalised for the opening; whitespace collapsing can only shorten text. */
const OPENING_RAW_CHARS = 1200;

/** Escapes a user phrase and applies the contraction spellings to it. */
function phraseToSource(phrase: string): string {
  const norm = normalizeText(phrase);
  if (norm === '') return '';
  return norm
    .split(/(\s+)/)
    .map((tok) => {
      if (/^\s+$/.test(tok)) return '\\s+';
      const bare = tok.replace(/[.,!?;:]+$/, '');
      const tail = tok.slice(bare.length).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const alt = CONTRACTIONS[bare];
      return (alt ?? bare.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) + tail;
    })
    .join('');
}

const CONTRACTIONS: Readonly<Record<string, string>> = {
  "can't": CANT,
  cant: CANT,
  cannot: CANT,
  "won't": WONT,
  "don't": DONT,
  "i'm": IM,
  "i'd": ID,
  "i'll": ILL,
  "it's": String.raw`(?:it'?s|it is)`,
  "that's": String.raw`(?:that'?s|that is)`,
  "isn't": String.raw`(?:isn'?t|is not)`,
  "wouldn't": String.raw`(?:wouldn'?t|would not)`,
  "shouldn't": String.raw`(?:shouldn'?t|should not)`,
  "couldn't": String.raw`(?:couldn'?t|could not)`,
  "doesn't": String.raw`(?:doesn'?t|does not)`,
  "i've": String.raw`(?:i'?ve|i have)`,
};

function compileAlternation(sources: readonly string[], anchored: boolean): RegExp | null {
  const live = sources.filter((s) => s !== '');
  if (live.length === 0) return null;
  const body = live.map((s) => `(?:${s})`).join('|');
  return new RegExp(anchored ? `${CLAUSE_START}(?:${body})` : `(?:${body})`, 'g');
}

/** True when `pos` lies inside a double-quoted span of `text` (an odd number of `"` before it). */
function insideQuotes(text: string, pos: number): boolean {
  let n = 0;
  for (let i = text.indexOf('"'); i !== -1 && i < pos; i = text.indexOf('"', i + 1)) n++;
  return n % 2 === 1;
}

function matchesUnquoted(re: RegExp | null, text: string): boolean {
  if (re === null) return false;
  re.lastIndex = 0;
  const quoted = text.indexOf('"') !== -1;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (!quoted || !insideQuotes(text, m.index)) return true;
    if (m[0].length === 0) re.lastIndex++;
  }
  return false;
}

/** The first few sentences of an already normalised text. */
function openingOf(norm: string): string {
  const limit = Math.min(norm.length, OPENING_MAX_CHARS);
  let sentences = 0;
  for (let i = 0; i < limit; i++) {
    const c = norm.charCodeAt(i);
    // . ! ? or a line break, followed by a blank or the end, closes a sentence.
    if (c === 0x2e || c === 0x21 || c === 0x3f || c === 0x0a) {
      const next = norm.charCodeAt(i + 1);
      if (Number.isNaN(next) || next === 0x20 || next === 0x0a || c === 0x0a) {
        if (++sentences === OPENING_SENTENCES) return norm.slice(0, i + 1);
      }
    }
  }
  return norm.slice(0, limit);
}

/**
 * True when an apology opening (APOLOGY, starting a clause within the first APOLOGY_MAX_START characters,
 * outside quotes) is followed in the same or the next sentence by a negated ability (NEG_AFTER_APOLOGY).
 * The window is cut out by hand so the regexes never scan more than a couple of sentences.
 */
function apologyThenRefusal(apology: RegExp, neg: RegExp, norm: string): boolean {
  apology.lastIndex = 0;
  const quoted = norm.indexOf('"') !== -1;
  let m: RegExpExecArray | null;
  while ((m = apology.exec(norm)) !== null && m.index < APOLOGY_MAX_START) {
    if (quoted && insideQuotes(norm, m.index)) continue;
    const start = m.index + m[0].length;
    const limit = Math.min(norm.length, start + APOLOGY_WINDOW_CHARS);
    let end = limit;
    let ends = 0;
    for (let i = start; i < limit; i++) {
      const c = norm.charCodeAt(i);
      if (c === 0x2e || c === 0x21 || c === 0x3f || c === 0x0a) {
        const next = norm.charCodeAt(i + 1);
        if (Number.isNaN(next) || next === 0x20 || next === 0x0a || c === 0x0a) {
          // The apology's own sentence, then the next one.
          if (++ends === 2) {
            end = i;
            break;
          }
        }
      }
    }
    if (neg.test(norm.slice(start, end))) return true;
  }
  return false;
}

/**
 * Builds a detector; compile once and call it for every message. Throws when a pattern is not a valid
 * regular expression, naming the pattern and its index.
 */
export function createRefusalDetector(opts: RefusalDetectorOptions = {}): (text: string) => boolean {
  const useDefault = opts.useDefault ?? true;
  const extra = (opts.extraPhrases ?? []).map(phraseToSource);
  const opening = compileAlternation([...(useDefault ? OPENING_PHRASES : []), ...extra], true);
  const anywhere = useDefault ? compileAlternation(ANYWHERE_PHRASES, true) : null;
  const apology = useDefault ? compileAlternation([APOLOGY], true) : null;
  const negAfterApology = useDefault ? new RegExp(`(?<![a-z'])(?:${NEG_AFTER_APOLOGY.map((x) => `(?:${x})`).join('|')})`) : null;
  const free = useDefault ? compileAlternation(FREE_PHRASES, false) : null;
  const patterns = (opts.patterns ?? []).map((src, i) => {
    try {
      // 'u' as the config validator compiles them, so \p{…} and friends mean the same in both places.
      return new RegExp(src, 'iu');
    } catch (e) {
      throw new Error(`patterns[${i}]: invalid regular expression ${JSON.stringify(src)}: ${(e as Error).message}`);
    }
  });

  // Only the default phrases are known to need a hint word; a user's extra phrases may need none.
  const precheck = useDefault && extra.length === 0 && opts.noPrecheck !== true;

  return (text: string): boolean => {
    if (text.length === 0) return false;
    if (opening !== null || free !== null) {
      const rawHead = text.length > OPENING_RAW_CHARS ? text.slice(0, OPENING_RAW_CHARS) : text;
      let head: string | null = null;
      let open: string | null = null;
      if (!precheck || OPENING_HINT_RE.test(rawHead.toLowerCase())) {
        head = normalizeText(rawHead);
        open = openingOf(head);
        if (matchesUnquoted(opening, open) || matchesUnquoted(free, open)) return true;
        if (apology !== null && negAfterApology !== null && apologyThenRefusal(apology, negAfterApology, head)) return true;
      }
      // Every anywhere-phrase contains one of these words; checking the raw text first saves
      // normalising long helpful answers in full.
      // The anywhere-phrases all start with a negation or "decline": the same hint, over the whole text.
      if (anywhere !== null && ANYWHERE_HINT_RE.test(text) && (!precheck || OPENING_HINT_RE.test(text.toLowerCase()))) {
        head ??= normalizeText(rawHead);
        open ??= openingOf(head);
        if (text.length > open.length) {
          const whole = text.length > OPENING_RAW_CHARS ? normalizeText(text) : head;
          if (whole.length > open.length && matchesUnquoted(anywhere, whole)) return true;
        }
      }
    }
    if (patterns.length > 0) {
      const norm = normalizeForPatterns(text);
      for (const re of patterns) if (re.test(norm)) return true;
    }
    return false;
  };
}
