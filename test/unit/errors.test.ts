import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CATALOG, FactoryError, isFactoryError, staleEpochError, type FactoryErrorCode } from '../../src/errors.js';

test('every catalog code builds an error with its exit code and hint, and isFactoryError matches it by code only', () => {
  for (const code of Object.keys(ERROR_CATALOG) as FactoryErrorCode[]) {
    const error = new FactoryError(code, `something about ${code}`);
    assert.equal(error.exitCode, ERROR_CATALOG[code].exitCode, code);
    assert.equal(error.hint, ERROR_CATALOG[code].hint, code);
    assert.ok(isFactoryError(error, code));
    assert.ok(isFactoryError(error));
    const other = (Object.keys(ERROR_CATALOG) as FactoryErrorCode[]).find((c) => c !== code)!;
    assert.equal(isFactoryError(error, other), false, `${code} is not ${other}`);
  }
  assert.equal(isFactoryError(new Error('FACTORY_USAGE')), false, 'never matched on message text');
});

test('isFactoryError narrows to the code, so code-specific fields type-check', () => {
  const error: unknown = staleEpochError(3, 4);
  if (!isFactoryError(error, 'FACTORY_STATE_STALE_EPOCH')) assert.fail('expected a stale-epoch error');
  const code: 'FACTORY_STATE_STALE_EPOCH' = error.code;
  const exitCode: 3 = error.exitCode;
  assert.equal(code, 'FACTORY_STATE_STALE_EPOCH');
  assert.equal(exitCode, 3);
  assert.match(error.message, /epoch 3 was refused: epoch 4 owns the state/);
});
