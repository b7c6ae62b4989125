// The local stack's budget-alert delivery: each alert a settlement made (exactly once, see
// core/alerts.ts) is printed and, when OPENAI_WRAPI_ALERT_WEBHOOK is set, POSTed there as JSON.
// On AWS the ledger table's stream and the notifier function do this instead.
import { alertPayload, alertText, type BudgetAlert, type SpendRow } from '../core/alerts.ts';
import type { Ledger, Logger } from '../core/ports.ts';
import { postAlert } from '../store/alert-webhook.ts';

export interface AlertDeliveryOptions {
  stage: string;
  ledger: Ledger;
  /** Where to POST each alert; none: printed only. */
  url?: string;
  print?: (text: string) => void;
  log: Logger;
  fetch?: typeof fetch;
  /** Before the second try (doubling after); a receiver that is down gets three tries in all. */
  backoffMs?: number;
}

export function createAlertDelivery(opts: AlertDeliveryOptions): (alerts: BudgetAlert[]) => Promise<void> {
  /** The period's detail rows: the month's, or the alert's day's. */
  async function spendRows(alert: BudgetAlert): Promise<SpendRow[]> {
    if (alert.period === 'month') return opts.ledger.usage(alert.month);
    return (await opts.ledger.daily(alert.month)).filter((d) => d.day === alert.day);
  }

  return async (alerts) => {
    for (const alert of alerts) {
      const payload = alertPayload(opts.stage, alert, await spendRows(alert).catch(() => []));
      opts.print?.(`[${opts.stage}] budget alert: ${alertText(payload).replaceAll('\n', '\n  ')}`);
      if (!opts.url) continue;
      // Three tries, as the notifier makes on AWS. The URL may carry a token: it is never logged.
      await postAlert(opts.url, payload, { backoffMs: opts.backoffMs, fetch: opts.fetch }).catch((error) =>
        opts.log.error('budget alert webhook failed', { stage: opts.stage, error: (error as Error).message, alert: payload.id }),
      );
    }
  };
}
