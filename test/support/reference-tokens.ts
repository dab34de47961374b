/**
 * An independent token count for tests: js-tiktoken itself (OpenAI's tiktoken ported), not our encoder.
 * Special-token text such as <|endoftext|> is ordinary text (allowed [], disallowed []). Keep the texts short:
 * js-tiktoken's merge is quadratic on long unbroken runs.
 */
import { Tiktoken } from 'js-tiktoken/lite';
import o200kRanks from 'js-tiktoken/ranks/o200k_base';
import cl100kRanks from 'js-tiktoken/ranks/cl100k_base';

export type Enc = 'o200k_base' | 'cl100k_base';

const encoders = new Map<Enc, Tiktoken>();

export function tok(enc: Enc, text: string): number {
  let e = encoders.get(enc);
  if (!e) encoders.set(enc, (e = new Tiktoken(enc === 'o200k_base' ? o200kRanks : cl100kRanks)));
  return e.encode(text, [], []).length;
}
