/** Switches read from the environment. */
import { UsageError } from './errors.js';

/**
 * A 0/1 switch: false for 0, true for 1, undefined when unset or empty (the caller's default). Any other value is a
 * usage error naming the variable and the value.
 */
export function envSwitch(name: string): boolean | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if (v === '0' || v === '1') return v === '1';
  throw new UsageError(`${name}: expected 0 or 1, got ${JSON.stringify(v)}`);
}
