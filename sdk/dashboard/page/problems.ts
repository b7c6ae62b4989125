// When the page cannot show usage: what happened, and what to do about it.
import { code, h } from './dom.ts';

/** The kinds of problem the dashboard server reports (see serve.ts). */
export type ProblemKind = 'session' | 'not_admin' | 'unreachable' | 'config' | 'refused';

export interface Problem {
  kind: ProblemKind;
  message: string;
  code?: string | null;
}

export function problemView(p: Problem, stage: string, retry: () => void): HTMLElement {
  const { title, todo } = explain(p, stage);
  const canRetry = p.kind !== 'session';
  return h(
    'div',
    { class: `problem ${p.kind}`, 'data-problem': p.kind, role: 'alert' },
    h('h2', {}, title),
    h('p', { class: 'what' }, p.message),
    h('div', { class: 'todo' }, ...todo),
    canRetry ? h('p', {}, h('button', { type: 'button', class: 'retry', onclick: retry }, 'Try again')) : null,
  );
}

function explain(p: Problem, stage: string): { title: string; todo: HTMLElement[] } {
  switch (p.kind) {
    case 'session':
      return {
        title: 'This page needs the link from your terminal',
        todo: [
          h('p', {}, 'The dashboard answers only the link it printed when it started: that link carries a secret token, ' +
            'so other users and web pages on this machine cannot read your usage.'),
          h('p', {}, 'Open that link again. The local stack prints it at start (', code('npm start'), ' or ', code('openai-wrapi local'),
            '); for deployed stages run ', code('openai-wrapi dashboard'), '.'),
        ],
      };
    case 'not_admin':
      return {
        title: `You are not an admin of stage ${stage}`,
        todo: [
          h('p', {}, 'The dashboard reads usage through the stage\'s admin function, which only admins may invoke.'),
          h('p', {}, 'Ask an admin to attach the stack\'s admin policy (its ', code('adminPolicyArn'), ' output) to your IAM user or role, ' +
            'or start the dashboard with an admin\'s credentials: ', code('AWS_PROFILE=admin openai-wrapi dashboard'), '.'),
          h('p', {}, 'On the local stack, admins are the users added with ', code('openai-wrapi local users add NAME --admin'), '.'),
        ],
      };
    case 'unreachable':
      return {
        title: `The admin function of stage ${stage} cannot be reached`,
        todo: [
          h('p', {}, 'Check that the stage is deployed (', code('pulumi up'), ') or that the local stack is running (', code('npm start'),
            ' or ', code('openai-wrapi local'), '), then try again.'),
        ],
      };
    case 'config':
      return {
        title: `Stage ${stage} is not set up on this machine`,
        todo: [
          h('p', {}, 'Save the stage\'s outputs and point the dashboard at them, then restart it: ',
            code(`pulumi stack output --json --stack ${stage} > ${stage}.json`), ' and ', code(`OPENAI_WRAPI_OUTPUTS=${stage}.json openai-wrapi dashboard`), '.'),
        ],
      };
    case 'refused':
      return { title: `The admin function of stage ${stage} refused the request`, todo: [h('p', {}, 'Its logs say more.')] };
  }
}
