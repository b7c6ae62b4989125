// What a budget alert (and the daily digest) says on each AWS channel. Pure code: the notifier
// function sends the alerts, the admin function the digest.
//   - SNS (MessageStructure json): email subscribers get the plain text, everything else (Amazon Q
//     Developer in chat applications, which subscribes a Slack channel over HTTPS) the `default`
//     message, an Amazon Q custom notification:
//     https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html
//   - the webhook: the AlertPayload itself, as JSON.
import { alertSubject, alertText, type AlertPayload, type Spender } from './alerts.ts';
import { digestSubject, digestText } from './digest.ts';
import type { DailyDigest } from './protocol.ts';
import { describeScope, usd } from './limits.ts';

/** An Amazon Q Developer in chat applications custom notification (the fields we use). */
export interface ChatNotification {
  version: '1.0';
  source: 'custom';
  id: string;
  content: {
    textType: 'client-markdown';
    title: string;
    description: string;
    nextSteps: string[];
    keywords: string[];
  };
  metadata: {
    threadId: string;
    summary: string;
    eventType: string;
    additionalContext: Record<string, string>;
  };
}

const money = (u: number) => usd(Math.round(u * 1e9));
/** Backticks would end a code span early; names never need them. */
const code = (text: string) => `\`${text.replace(/`/g, "'")}\``;
const spenders = (list: Spender[]) => (list.length ? list.map((s) => `${code(s.name)} ${money(s.spentUsd)}`).join(', ') : 'nothing settled yet');

/** The chat card: title, what happened, what the money went to, how to raise the limit. */
export function chatNotification(p: AlertPayload): ChatNotification {
  const when = p.period === 'day' ? `on ${p.day} (UTC)` : `in ${p.month}`;
  const kind = p.period === 'day' ? 'daily' : 'monthly';
  const description = [
    `${code(describeScope(p.scope))} in stage *${p.stage}* has spent *${money(p.spentUsd)}* ${when}: ` +
      `*${p.threshold}%* of its ${kind} limit of ${money(p.limitUsd)}.`,
    p.threshold >= 100 ? 'Calls that would pass the limit are now refused.' : 'Calls that would pass the limit will be refused.',
    `Top users: ${spenders(p.topUsers)}`,
    `Top models: ${spenders(p.topModels)}`,
  ].join('\n');
  return {
    version: '1.0',
    source: 'custom',
    id: p.id,
    content: {
      textType: 'client-markdown',
      title: `${p.threshold >= 100 ? ':no_entry:' : ':warning:'} ${alertSubject(p)}`,
      description,
      nextSteps: [`To raise the limit: ${code(p.raiseCommand)}`],
      keywords: [p.stage, p.scope.project, `${p.threshold}%`],
    },
    metadata: {
      // One thread per limit and period: its 80% and 100% alerts read together.
      threadId: [p.stage, p.period, p.period === 'day' ? p.day : p.month, p.scope.project, p.scope.user, p.scope.model].join(':'),
      summary: alertSubject(p),
      eventType: 'BudgetAlert',
      additionalContext: { stage: p.stage, project: p.scope.project, threshold: String(p.threshold), alertId: p.id },
    },
  };
}

/** What SNS Publish takes: a subject and a per-protocol JSON message. */
export interface SnsMessage {
  subject: string;
  message: string;
  messageStructure: 'json';
}

/**
 * SNS refuses a subject with control characters or of 100 characters or more: such a refusal would
 * fail the message on every retry.
 */
const snsSubject = (subject: string) => subject.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 99);

/** The SNS Publish of an alert. */
export function snsAlertMessage(p: AlertPayload): SnsMessage {
  return {
    subject: snsSubject(alertSubject(p)),
    message: JSON.stringify({ default: JSON.stringify(chatNotification(p)), email: alertText(p) }),
    messageStructure: 'json',
  };
}

/** The digest's chat card: the email's text with names as code, one thread per stage and month. */
export function digestNotification(d: DailyDigest): ChatNotification {
  const [, , ...body] = digestText(d, { name: code, quoted: code }).split('\n'); // the card's title says the first line
  return {
    version: '1.0',
    source: 'custom',
    id: `digest:${d.stage}:${d.day}`,
    content: {
      textType: 'client-markdown',
      title: `:bar_chart: ${digestSubject(d)}`,
      description: body.filter((line) => !line.startsWith('The whole report: ')).join('\n').trim(),
      nextSteps: [`The whole report: ${code(d.reportCommand)}`],
      keywords: [d.stage, 'digest'],
    },
    metadata: {
      threadId: [d.stage, 'digest', d.month].join(':'),
      summary: digestSubject(d),
      eventType: 'DailyDigest',
      additionalContext: { stage: d.stage, day: d.day },
    },
  };
}

/** The SNS Publish of a daily digest: plain text by email, a card in Slack. */
export function snsDigestMessage(d: DailyDigest): SnsMessage {
  return {
    subject: snsSubject(digestSubject(d)),
    message: JSON.stringify({ default: JSON.stringify(digestNotification(d)), email: digestText(d) }),
    messageStructure: 'json',
  };
}
