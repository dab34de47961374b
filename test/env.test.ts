import { afterEach, describe, expect, it } from 'vitest';
import { envSwitch } from '../pipeline/env.js';
import { UsageError } from '../pipeline/errors.js';

const NAME = 'LOGCURATE_TEST_SWITCH';

describe('envSwitch', () => {
  afterEach(() => {
    delete process.env[NAME];
  });

  it('reads 0 and 1, and leaves unset or empty to the caller', () => {
    expect(envSwitch(NAME)).toBeUndefined();
    process.env[NAME] = '';
    expect(envSwitch(NAME)).toBeUndefined();
    process.env[NAME] = '0';
    expect(envSwitch(NAME)).toBe(false);
    process.env[NAME] = '1';
    expect(envSwitch(NAME)).toBe(true);
  });

  it('refuses anything else as a usage error naming the variable and the value', () => {
    for (const v of ['yes', 'true', ' 1', '2']) {
      process.env[NAME] = v;
      expect(() => envSwitch(NAME)).toThrow(UsageError);
      expect(() => envSwitch(NAME)).toThrow(`${NAME}: expected 0 or 1, got ${JSON.stringify(v)}`);
    }
  });
});
