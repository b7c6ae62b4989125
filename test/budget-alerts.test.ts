// Budget alerts end to end, as a team would meet them: a small limit, 32 concurrent calls through the
// official `openai` client on the local stack (SQLite, and DynamoDB on dynalite), and a webhook
// receiver at OPENAI_WRAPI_ALERT_WEBHOOK. Each threshold must arrive exactly once; a raised limit and
// the next month re-arm them.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AlertPayload } from '../runtime/core/alerts.ts';
import type { Ledger } from '../runtime/core/ports.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { startTestStack, type TestStack } from './helpers/stack.ts';

interface Receiver {
  url: string;
  received: AlertPayload[];
  /** Answers the next `n` posts with this status first (a receiver that is down). */
  failNext(n: number, status: number): void;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: AlertPayload[] = [];
  let failing = 0;
  let failStatus = 503;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (failing > 0) {
        failing--;
        res.writeHead(failStatus).end();
        return;
      }
      assert.is(req.headers['content-type'], 'application/json');
      received.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/budget?token=secret`,
    received,
    failNext(n, status) {
      failing = n;
      failStatus = status;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** $1000 per 1M output tokens and free input: a call capped at `tokens` costs exactly its reservation. */
const MODEL = 'gpt-4o-mini';
const CENT_TOKENS = 10; // 10 tokens = $0.01

/** What went wrong inside the stack under test (a ledger past its deadline on a loaded machine, say). */
const faults: string[] = [];

async function waitFor(check: () => boolean, what: string, timeoutMs = 8_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${faults.length ? ` (faults: ${faults.join('; ')})` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const store of ['sqlite', 'dynamodb'] as const) {
  const test = suite(`budget alerts end to end: ${store}`);
  let t: TestStack;
  let hook: Receiver;
  let dynalite: Awaited<ReturnType<typeof startDynalite>> | undefined;
  let clock = Date.parse('2026-11-20T12:00:00Z');
  /** Ledger calls still running, the proxy's background releases and settlements included. */
  const inFlight = new Set<Promise<unknown>>();
  const trackLedger = (ledger: Ledger): Ledger =>
    new Proxy(ledger, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result = value.apply(target, args);
          if (result instanceof Promise) {
            inFlight.add(result);
            result.finally(() => inFlight.delete(result)).catch(() => undefined);
          }
          return result;
        };
      },
    });
  const ledgerQuiet = () => waitFor(() => inFlight.size === 0, 'the ledger\'s background writes');

  test.before(async () => {
    hook = await startReceiver();
    dynalite = store === 'dynamodb' ? await startDynalite() : undefined;
    t = await startTestStack({
      env: {
        OPENAI_WRAPI_ALERT_WEBHOOK: hook.url,
        // dynalite answers 32 concurrent calls slowly on a loaded machine: this test is about alerts,
        // the ledger's own deadline and faults have theirs (ledger-faults, proxy-errors).
        ...(dynalite ? { OPENAI_WRAPI_DYNAMODB_ENDPOINT: dynalite.endpoint, OPENAI_WRAPI_DYNAMODB_TIMEOUT_MS: '5000' } : {}),
      },
      stack: {
        now: () => clock,
        wrapLedger: trackLedger,
        log: {
          error: (message, fields) => faults.push(`${message} ${JSON.stringify(fields ?? {})}`),
          // A 5xx answered, or a call billed at its estimate because OpenAI's answer never came.
          info: (message, fields) => {
            if (Number(fields?.status) >= 500 || fields?.outcome === 'estimate') faults.push(`${message} ${JSON.stringify(fields)}`);
          },
        },
      },
    });
    await t.user('alice');
    await t.user('bob');
    await t.admin({ action: 'setPrice', model: MODEL, input: 0, cachedInput: 0, output: 1000 });
  });
  test.after(async () => {
    await t.close();
    await hook.close();
    await dynalite?.close();
  });

  let batch = 0;
  /** `n` calls at once, each capped at `tokens` output tokens (the answer always fills them); never cached. */
  async function calls(n: number, tokens: number, project = 'team'): Promise<{ ok: number; refused: number }> {
    batch++;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        // Retries only meet a 503 (dynalite on a loaded machine can pass the ledger's 400 ms deadline):
        // a budget refusal says x-should-retry: false.
        t.client({ user: i % 3 === 0 ? 'bob' : 'alice', project, maxRetries: 6 }).chat.completions.create({
          model: MODEL,
          max_tokens: tokens,
          messages: [{ role: 'user', content: `fake:words=${tokens + 20} batch ${batch} call ${i}` }],
        }),
      ),
    );
    for (const r of results) {
      if (r.status === 'rejected') assert.is((r.reason as { status?: number }).status, 429, String(r.reason));
      else assert.is(r.value.usage?.completion_tokens, tokens);
    }
    return { ok: results.filter((r) => r.status === 'fulfilled').length, refused: results.filter((r) => r.status === 'rejected').length };
  }

  const spentUsd = async (project = 'team') => {
    const report = await t.admin({ action: 'usage', month: new Date(clock).toISOString().slice(0, 7) });
    return report.rows.filter((r: { project: string }) => r.project === project).reduce((sum: number, r: { spend: number }) => sum + r.spend, 0);
  };

  test('32 concurrent calls crossing 80% and 100% of a limit: one alert per threshold, with who spent it', async () => {
    await t.admin({ action: 'setLimit', project: 'team', limit: 0.25 });
    const burst = await calls(32, CENT_TOKENS);
    assert.is(burst.ok + burst.refused, 32);
    if (faults.length === 0) {
      assert.is(burst.ok, 25, 'exactly the 25 calls of $0.01 that fit $0.25');
    } else {
      // On a loaded machine a ledger call can pass its deadline: that call gets a 503 (the client
      // retries it) and its hold is given back in the background, and a concurrent call refused
      // while that hold still stood is refused for good. The budget must still fill exactly, one
      // call at a time, once those releases have landed.
      assert.ok(burst.ok <= 25, `${burst.ok} calls of $0.01 fit $0.25`);
      await ledgerQuiet();
      let more = 0;
      while ((await calls(1, CENT_TOKENS)).ok === 1) more++;
      assert.ok(burst.ok + more <= 25 && burst.ok + more >= 25 - faults.length, `${burst.ok} + ${more} calls after faults: ${faults.join('; ')}`);
    }
    await waitFor(() => hook.received.length >= 2, 'two alerts');
    await new Promise((r) => setTimeout(r, 300)); // any duplicate would have come by now
    assert.is(Math.round((await spentUsd()) * 100), 25);
    const byThreshold = hook.received.map((a) => a.threshold).sort((a, b) => a - b);
    assert.equal(byThreshold, [80, 100], 'exactly one per threshold');
    for (const a of hook.received) {
      assert.is(a.type, 'budget_alert');
      assert.is(a.stage, 'dev');
      assert.equal(a.scope, { project: 'team', user: '*', model: '*' });
      assert.is(a.period, 'month');
      assert.is(a.month, '2026-11');
      assert.is(a.limitUsd, 0.25);
      assert.ok(a.spentUsd >= (a.threshold / 100) * 0.25 - 1e-9 && a.spentUsd <= 0.25 + 1e-9, `spent ${a.spentUsd} at ${a.threshold}%`);
      assert.equal(a.topModels.map((m) => m.name), [MODEL]);
      assert.equal(a.topUsers.map((u) => u.name).sort(), ['alice', 'bob'], 'both callers, biggest first');
      assert.ok(a.topUsers[0].spentUsd >= a.topUsers[1].spentUsd);
      assert.match(a.raiseCommand, /^openai-wrapi limits set --stage dev --project "team" --limit <usd>$/);
      assert.ok(!JSON.stringify(a).includes('fake:words'), 'no prompt text in an alert');
    }
    const listed = await t.stack.stages.dev.ledger.alerts('2026-11');
    assert.equal(listed.map((a) => a.threshold).sort((a, b) => a - b), [80, 100], 'listed for the dashboard');
  });

  test('a raised limit re-arms: crossing 80% of the new limit alerts again, once', async () => {
    hook.received.length = 0;
    await t.admin({ action: 'setLimit', project: 'team', limit: 0.5 });
    // $0.25 spent of $0.50: 50%. Fifteen more cents make $0.40, 80%.
    await calls(15, CENT_TOKENS);
    await waitFor(() => hook.received.length >= 1, 'the re-armed alert');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hook.received.map((a) => [a.threshold, a.limitUsd]), [[80, 0.5]]);
  });

  test('the next month re-arms every threshold; a receiver that is down is retried', async () => {
    hook.received.length = 0;
    clock = Date.parse('2026-12-01T00:00:05Z');
    hook.failNext(1, 503);
    // Four calls of $0.10: the fourth reaches 80% of $0.50.
    await calls(4, CENT_TOKENS * 10);
    await waitFor(() => hook.received.length >= 1, 'the next month\'s alert', 10_000);
    assert.equal(hook.received.map((a) => [a.month, a.threshold]), [['2026-12', 80]]);
  });

  test('a daily limit alerts per day, and "alerts none" silences a limit', async () => {
    hook.received.length = 0;
    // $0.10 a month without alerts and $0.10 a day with the default ones: eight cents reach 80% of both.
    await t.admin({ action: 'setLimit', project: 'daily', limit: 0.1, period: 'day' });
    await t.stack.stages.dev.ledger.setLimit({ project: 'daily', user: '*', model: '*' }, 0.1e9, 'month', []);
    await calls(8, CENT_TOKENS, 'daily');
    await waitFor(() => hook.received.length >= 1, 'the daily alert');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hook.received.map((a) => [a.period, a.day, a.threshold, a.limitUsd]), [['day', '2026-12-01', 80, 0.1]]);
    assert.match(hook.received[0].raiseCommand, /--period day$/);
  });

  test.run();
}
