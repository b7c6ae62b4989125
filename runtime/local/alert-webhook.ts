// The local stack's budget-alert delivery: each alert a settlement made (exactly once, see
// core/alerts.ts) is printed and, when OPENAI_WRAPI_ALERT_WEBHOOK is set, POSTed there as JSON.
// On AWS the ledger table's stream and the notifier function do this instead.
import { alertPayload, alertText, type BudgetAlert, type SpendRow } from '../core/alerts.ts';
import type { Ledger, Logger } from '../core/ports.ts';

export interface AlertDeliveryOptions {
  stage: string;
  ledger: Ledger;
  /** Where to POST each alert; none: printed only. */
  url?: string;
  print?: (text: string) => void;
  log: Logger;
  fetch?: typeof fetch;
  /** Waits before each retry (ms); a receiver that is down gets three tries in all by default. */
  retryDelays?: readonly number[];
}

const RETRY_DELAYS = [500, 2_000];
const TIMEOUT_MS = 5_000;

export function createAlertDelivery(opts: AlertDeliveryOptions): (alerts: BudgetAlert[]) => Promise<void> {
  const send = opts.fetch ?? fetch;
  const delays = opts.retryDelays ?? RETRY_DELAYS;

  /** The period's detail rows: the month's, or the alert's day's. */
  async function spendRows(alert: BudgetAlert): Promise<SpendRow[]> {
    if (alert.period === 'month') return opts.ledger.usage(alert.month);
    return (await opts.ledger.daily(alert.month)).filter((d) => d.day === alert.day);
  }

  /** POSTs the body, again after each delay on a network error, a 429 or a 5xx. */
  async function post(body: string): Promise<number | string> {
    let last: number | string = 'not sent';
    for (let attempt = 0; attempt <= delays.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, delays[attempt - 1]));
      try {
        const res = await send(opts.url!, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'openai-wrapi-alerts' },
          body,
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        await res.body?.cancel();
        if (res.ok) return res.status;
        last = res.status;
        if (res.status !== 429 && res.status < 500) return last;
      } catch (error) {
        last = (error as Error).name;
      }
    }
    return last;
  }

  return async (alerts) => {
    for (const alert of alerts) {
      const payload = alertPayload(opts.stage, alert, await spendRows(alert).catch(() => []));
      opts.print?.(`[${opts.stage}] budget alert: ${alertText(payload).replaceAll('\n', '\n  ')}`);
      if (!opts.url) continue;
      const status = await post(JSON.stringify(payload));
      // The URL may carry a token: it is never logged.
      if (typeof status !== 'number' || status >= 300) opts.log.error('budget alert webhook failed', { stage: opts.stage, result: status, alert: payload.id });
    }
  };
}
