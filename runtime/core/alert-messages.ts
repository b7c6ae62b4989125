// What a budget alert says on each AWS channel. Pure code: the notifier function sends these.
//   - SNS (MessageStructure json): email subscribers get the plain text, everything else (Amazon Q
//     Developer in chat applications, which subscribes a Slack channel over HTTPS) the `default`
//     message, an Amazon Q custom notification:
//     https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html
//   - the webhook: the AlertPayload itself, as JSON.
import { alertSubject, alertText, type AlertPayload, type Spender } from './alerts.ts';
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

/** The SNS Publish of an alert: a subject and a per-protocol JSON message. */
export function snsAlertMessage(p: AlertPayload): { subject: string; message: string; messageStructure: 'json' } {
  return {
    // SNS refuses a subject with control characters or of 100 characters or more: such a refusal would
    // fail the alert on every retry.
    subject: alertSubject(p).replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 99),
    message: JSON.stringify({ default: JSON.stringify(chatNotification(p)), email: alertText(p) }),
    messageStructure: 'json',
  };
}
