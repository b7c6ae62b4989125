// The budget alerts' generic webhook: POST the alert as JSON, retried with backoff on network errors,
// 5xx and 429. The URL may hold a token: it never appears in an error or a log line.
import type { AlertPayload } from '../core/alerts.ts';

export interface WebhookOptions {
  /** Three tries in all by default. */
  attempts?: number;
  /** Before the second try; doubles after each. */
  backoffMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** The webhook refused the alert or could not be reached (after its retries). */
export class WebhookError extends Error {
  override name = 'WebhookError';
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

const retryable = (status: number) => status >= 500 || status === 429;
/** A Retry-After in seconds, capped: the notifier has a lease to keep. */
const retryAfterMs = (value: string | null) => (value && /^\d+$/.test(value) ? Math.min(Number(value) * 1000, 5_000) : 0);

export async function postAlert(url: string, payload: AlertPayload, o: WebhookOptions = {}): Promise<void> {
  const attempts = o.attempts ?? 3;
  const doFetch = o.fetch ?? fetch;
  const body = JSON.stringify(payload);
  let wait = o.backoffMs ?? 500;
  for (let n = 1; ; n++) {
    let failure: WebhookError;
    let pause = 0;
    try {
      const response = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'openai-wrapi-notifier', 'x-openai-wrapi-alert-id': encodeURIComponent(payload.id) },
        body,
        redirect: 'error', // a redirect would resend the alert somewhere the admin never configured
        signal: AbortSignal.timeout(o.timeoutMs ?? 5_000),
      });
      await response.body?.cancel();
      if (response.ok) return;
      failure = new WebhookError(`the alert webhook answered HTTP ${response.status}`, response.status);
      if (!retryable(response.status)) throw failure;
      pause = retryAfterMs(response.headers.get('retry-after'));
    } catch (error) {
      if (error instanceof WebhookError) throw error;
      failure = new WebhookError(`the alert webhook could not be reached (${(error as Error).name})`, undefined);
    }
    if (n >= attempts) throw failure;
    await new Promise((resolve) => setTimeout(resolve, Math.max(wait, pause)));
    wait *= 2;
  }
}

/** The secret's text: `{ "url": "https://…" }`, or (edited by hand) the URL alone. */
export function webhookUrlOf(secretString: string | undefined): string | undefined {
  const text = secretString?.trim();
  if (!text) return undefined;
  let url: unknown = text;
  if (text.startsWith('{')) {
    try {
      url = (JSON.parse(text) as { url?: unknown }).url;
    } catch {
      return undefined;
    }
  }
  return typeof url === 'string' && /^https?:\/\//.test(url) && URL.canParse(url) ? url : undefined;
}
