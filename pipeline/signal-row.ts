/**
 * A conversation's signals as the numbers a chunk of columns holds for it (pipeline/columns.ts), in one fixed
 * order. Ingest's worker decodes each new row's signals text into these, so the main thread, the busier one, only
 * copies them into the chunk it is building. No store or SQLite here: the worker loads this module.
 */
import { decodeSignalsInto, type SignalColumns } from './signals.js';

/** Columns for n rows. */
function signalColumns(n: number): SignalColumns {
  return {
    refusal: new Uint8Array(n),
    keyHash: new Float64Array(3 * n),
    keyLength: new Int32Array(3 * n),
    firstUser: new Float64Array(n),
    users: new Int32Array(n),
    promptHi: new Uint32Array(n),
    promptLo: new Uint32Array(n),
  };
}

const scratch = signalColumns(1);

/** Valid signals text (as encodeSignals writes it) as numbers: what decodeSignalsInto would put in a row. */
export function signalRow(text: string): number[] {
  decodeSignalsInto(text, scratch, 0);
  const c = scratch;
  return [c.refusal[0]!, c.keyHash[0]!, c.keyHash[1]!, c.keyHash[2]!, c.keyLength[0]!, c.keyLength[1]!, c.keyLength[2]!, c.firstUser[0]!, c.users[0]!, c.promptHi[0]!, c.promptLo[0]!];
}

/** signalRow's numbers into row k of the columns. */
export function setSignalRow(row: readonly number[], c: SignalColumns, k: number): void {
  c.refusal[k] = row[0]!;
  c.keyHash[3 * k] = row[1]!;
  c.keyHash[3 * k + 1] = row[2]!;
  c.keyHash[3 * k + 2] = row[3]!;
  c.keyLength[3 * k] = row[4]!;
  c.keyLength[3 * k + 1] = row[5]!;
  c.keyLength[3 * k + 2] = row[6]!;
  c.firstUser[k] = row[7]!;
  c.users[k] = row[8]!;
  c.promptHi[k] = row[9]!;
  c.promptLo[k] = row[10]!;
}
