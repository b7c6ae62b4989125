// Lambda entry point of the budget-alert notifier, fed by the ledger table's DynamoDB Stream through an
// event source mapping whose filter (ALERT_STREAM.filterPattern) passes only records of new alert
// marks. Each alert goes to every configured channel (the stage's SNS topic: email and Slack through
// Amazon Q; a webhook) once, however often the stream delivers its record. A record whose delivery
// failed is reported in batchItemFailures: Lambda retries it, then sends it to the dead-letter queue.
import { alertPayload, type AlertPayload } from '../core/alerts.ts';
import { snsAlertMessage } from '../core/alert-messages.ts';
import type { Logger } from '../core/ports.ts';
import { createDeliveryLog, periodRows, type DeliveryOutcome } from '../store/alert-deliveries.ts';
import { alertOfRecord, type BatchResponse, type StreamEvent, type StreamRecord } from '../store/alert-stream.ts';
import { postAlert, webhookUrlOf } from '../store/alert-webhook.ts';
import { cachedCredentials, createDynamoHttpClient, envCredentials } from '../store/dynamo-http.ts';
import type { LedgerClient } from '../store/dynamo-ledger.ts';
import { createSnsPublisher } from '../store/sns-publish.ts';
import { lambdaLogger, startInvocation } from './logger.ts';
import { readNotifierSettings, type NotifierSettings } from './settings.ts';

/** A way out for an alert: `name` keys its delivery records. */
export interface AlertChannel {
  name: string;
  send(payload: AlertPayload): Promise<void>;
}

export interface NotifierDeps {
  stage: string;
  client: LedgerClient;
  tableName: string;
  channels: AlertChannel[];
  log: Logger;
  leaseMs?: number;
  pollMs?: number;
}

/** Handles one batch: every record at once (alerts have no order); `deadline` is epoch ms. */
export function createNotifier(deps: NotifierDeps): (event: StreamEvent, deadline: number) => Promise<BatchResponse> {
  const deliveries = createDeliveryLog({ client: deps.client, tableName: deps.tableName, leaseMs: deps.leaseMs, pollMs: deps.pollMs });

  async function deliver(record: StreamRecord, deadline: number): Promise<void> {
    const alert = alertOfRecord(record);
    if (!alert) return; // the filter lets none through; a hand-made event might
    // Read once, and only if some channel still has to send.
    let payload: Promise<AlertPayload> | undefined;
    const payloadOnce = () => (payload ??= periodRows(deps.client, deps.tableName, alert).then((rows) => alertPayload(deps.stage, alert, rows)));
    const id = alertPayload(deps.stage, alert, []).id;
    const results = await Promise.allSettled(
      deps.channels.map((channel) => deliveries.once(id, channel.name, deadline, async () => channel.send(await payloadOnce()))),
    );
    const outcome: Record<string, DeliveryOutcome | 'failed'> = {};
    results.forEach((r, i) => (outcome[deps.channels[i].name] = r.status === 'fulfilled' ? r.value : 'failed'));
    const fields = { alertId: id, stage: deps.stage, project: alert.scope.project, period: alert.period, threshold: alert.threshold, channels: outcome };
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ channel: deps.channels[i].name, error: errorName(r.reason) }] : []));
    if (failed.length) {
      deps.log.error('budget alert delivery failed', { ...fields, failed });
      throw new Error('delivery failed');
    }
    deps.log.info('budget alert delivered', fields);
  }

  return async (event, deadline) => {
    const records = event.Records ?? [];
    const results = await Promise.allSettled(records.map((r) => deliver(r, deadline)));
    const failures: BatchResponse['batchItemFailures'] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const sequence = records[i].dynamodb?.SequenceNumber;
      // Without a sequence number Lambda cannot tell which record failed: fail the whole batch.
      if (!sequence) throw new Error('a record without a sequence number failed');
      failures.push({ itemIdentifier: sequence });
    });
    return { batchItemFailures: failures };
  };
}

const errorName = (error: unknown) => (error instanceof Error ? error.name : 'Error');

/** The webhook URL is re-read this often, so a new one in the secret is picked up without a deploy. */
const WEBHOOK_URL_TTL_MS = 5 * 60_000;

/** The channels the function's environment configures. */
export function lambdaChannels(settings: NotifierSettings, env: Record<string, string | undefined>): AlertChannel[] {
  const channels: AlertChannel[] = [];
  const credentials = cachedCredentials(envCredentials(env));
  const { topicArn, webhookSecretArn } = settings;
  if (topicArn) {
    const publish = createSnsPublisher({ region: settings.region, endpoint: settings.snsEndpoint, credentials });
    channels.push({ name: 'sns', send: async (p) => void (await publish({ topicArn, ...snsAlertMessage(p) })) });
  }
  if (webhookSecretArn) {
    let cached: { url: Promise<string>; until: number } | undefined;
    const url = () => {
      if (!cached || Date.now() >= cached.until) {
        const read = (async () => {
          const { readSecretString } = await import('./secrets-manager.ts');
          const found = webhookUrlOf(await readSecretString(webhookSecretArn, settings.region));
          if (!found) throw new Error('the alert webhook secret holds no http(s) URL');
          return found;
        })();
        cached = { url: read, until: Date.now() + WEBHOOK_URL_TTL_MS };
        read.catch(() => (cached = undefined)); // a failed read is retried by the next record
      }
      return cached.url;
    };
    channels.push({ name: 'webhook', send: async (p) => postAlert(await url(), p) });
  }
  return channels;
}

/** Room left before Lambda stops the function, for releasing claims and answering. */
const SAFETY_MS = 10_000;

let notifier: ReturnType<typeof createNotifier> | undefined;

function build() {
  const settings = readNotifierSettings(process.env);
  // Not the proxy's hot-path budget: an alert may wait a few seconds for a slow DynamoDB.
  const client = createDynamoHttpClient({
    region: settings.region,
    endpoint: settings.dynamodbEndpoint,
    credentials: envCredentials(process.env),
    connectTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    maxAttempts: 4,
  });
  return createNotifier({ stage: settings.stage, client, tableName: settings.tableName, channels: lambdaChannels(settings, process.env), log: lambdaLogger });
}

export async function handler(
  event: StreamEvent,
  context?: { awsRequestId?: string; getRemainingTimeInMillis?: () => number },
): Promise<BatchResponse> {
  startInvocation(context);
  notifier ??= build();
  const remaining = context?.getRemainingTimeInMillis?.() ?? 60_000;
  return notifier(event, Date.now() + Math.max(remaining - SAFETY_MS, 1_000));
}
