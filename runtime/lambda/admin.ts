// Lambda entry point of the admin function (invoked with lambda:InvokeFunction, no URL; and, when the
// stack's dailyDigest is on, by EventBridge Scheduler every day with DIGEST_SCHEDULE_EVENT).
import { createAdmin, type AdminDeps, type AdminHandler } from '../core/admin.ts';
import { snsDigestMessage } from '../core/alert-messages.ts';
import type { DailyDigest } from '../core/protocol.ts';
import { DIGEST_SCHEDULE_EVENT } from '../core/contract.ts';
import { createDeliveryLog, type DeliveryLog } from '../store/alert-deliveries.ts';
import { cachedCredentials, envCredentials } from '../store/dynamo-http.ts';
import { createSnsPublisher } from '../store/sns-publish.ts';
import { startInvocation } from './logger.ts';
import { readAdminSettings, type SnsTopicSettings } from './settings.ts';
import { lambdaLogger, lambdaStores } from './stores.ts';

let admin: AdminHandler | undefined;

function build(): AdminHandler {
  const { stage, stores, digest } = readAdminSettings(process.env);
  const { ledger, cache, client } = lambdaStores(stores);
  const deliveries = digest && createDeliveryLog({ client, tableName: stores.tableName });
  return createAdmin({ stage, ledger, cache, log: lambdaLogger, publishDigest: digest && digestPublisher(digest, process.env, deliveries) });
}

/** How long a scheduled digest waits for another invocation that is sending the same day's digest. */
const DIGEST_WAIT_MS = 20_000;

/**
 * Publishes the digest to the topic as the function's role (its credentials are in the environment).
 * An admin asking gets one every time; the schedule's goes out once a day, however often its
 * invocation arrives (Lambda delivers asynchronous events at least once, and retries a failed one),
 * through the same claimed delivery records as the budget alerts.
 */
export function digestPublisher(
  topic: SnsTopicSettings, env: Record<string, string | undefined>, deliveries?: DeliveryLog,
): NonNullable<AdminDeps['publishDigest']> {
  const publish = createSnsPublisher({ region: topic.region, endpoint: topic.snsEndpoint, credentials: cachedCredentials(envCredentials(env)) });
  const send = (digest: DailyDigest) => publish({ topicArn: topic.topicArn, ...snsDigestMessage(digest) });
  return async (digest, { scheduled }) => {
    if (!scheduled || !deliveries) return send(digest);
    // `once` runs the send at most once, and only when the day's digest had not gone out.
    let sent: { messageId: string } | undefined;
    await deliveries.once(digestDeliveryId(digest), 'topic', Date.now() + DIGEST_WAIT_MS, async () => {
      sent = await send(digest);
    });
    return sent ?? { alreadySent: true };
  };
}

/** The delivery record of a stage's scheduled digest of one day. */
const digestDeliveryId = (digest: Pick<DailyDigest, 'stage' | 'day'>) => `digest#${digest.stage}#${digest.day}`;

/** The schedule's failed digest, by its admin error code only: the answer is already in the log. */
class ScheduledDigestError extends Error {
  override name = 'ScheduledDigestError';
}

const isScheduledDigest = (event: unknown) =>
  typeof event === 'object' && event !== null &&
  (event as Record<string, unknown>).action === DIGEST_SCHEDULE_EVENT.action &&
  (event as Record<string, unknown>).trigger === DIGEST_SCHEDULE_EVENT.trigger;

/** `context.awsRequestId` names an unexpected failure: the caller's SDK and CloudWatch show the same id. */
export async function handler(event: unknown, context?: { awsRequestId?: string }): Promise<unknown> {
  startInvocation(context);
  admin ??= build();
  const result = await admin(event, { requestId: context?.awsRequestId });
  // The scheduler invokes asynchronously and nobody reads the answer: a digest that was not sent must
  // fail the invocation, so that Lambda retries it and the admin function's error alarm sees it.
  if (!result.ok && isScheduledDigest(event)) {
    lambdaLogger.error('daily digest not sent', { code: result.error.code });
    throw new ScheduledDigestError(`The daily digest was not sent (${result.error.code}).`);
  }
  return result;
}
