// The deploy contract's budget-scope header: what the proxy writes, the SDK reads back unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { budgetPeriod, formatBudgetScope, parseBudgetScope, stageEnvName } from '../runtime/core/contract.ts';

test('a scope survives the header whatever its names hold (spaces, =, %, non-ASCII)', () => {
  for (const scope of [
    { project: 'research', user: '*', model: '*' },
    { project: 'a b=c%d', user: 'Dev/alice smith', model: 'ft:gpt-4o-mini:org::x=1' },
    { project: 'données', user: 'federated:bob', model: 'gpt-4o' },
  ]) {
    const header = formatBudgetScope(scope);
    assert.is(header.split(' ').length, 3, header);
    assert.equal(parseBudgetScope(header), scope);
  }
  assert.is(formatBudgetScope({ project: 'headers', user: '*', model: 'gpt-4o-mini' }), 'project=headers user=* model=gpt-4o-mini');
  // A daily limit says so; a reader that knows only the scope still reads it.
  const daily = formatBudgetScope({ project: 'p', user: 'u', model: '*' }, 'day');
  assert.is(daily, 'project=p user=u model=* period=day');
  assert.equal(parseBudgetScope(daily), { project: 'p', user: 'u', model: '*' });
  assert.equal([budgetPeriod(daily), budgetPeriod('project=p user=u model=*'), budgetPeriod(null)], ['day', 'month', 'month']);
});

test('a header the SDK cannot fully read still gives what it can; one without a project gives nothing', () => {
  assert.equal(parseBudgetScope('project=p'), { project: 'p', user: '*', model: '*' });
  assert.equal(parseBudgetScope('project=%E0%A4%A user=u extra=1 junk'), { project: '%E0%A4%A', user: 'u', model: '*' });
  assert.equal(parseBudgetScope('__proto__=x project=p'), { project: 'p', user: '*', model: '*' });
  for (const value of [null, undefined, '', 'user=u model=m']) assert.is(parseBudgetScope(value), undefined);
});

test('a per-stage override is the name with the stage in capitals', () => {
  assert.is(stageEnvName('OPENAI_API_KEY', 'prod'), 'OPENAI_API_KEY_PROD');
});

test.run();
