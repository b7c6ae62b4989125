import type { Caller } from './proxy.ts';

/**
 * The short user name scopes use, from a verified principal ARN:
 * `arn:aws:iam::1:user/path/alice` → `alice`; `arn:aws:sts::1:assumed-role/Role/session` →
 * `Role/session`; `arn:aws:iam::1:root` → `root`. Undefined for anything unrecognised.
 */
export function callerFromArn(arn: string): Caller | undefined {
  const match = /^arn:aws[a-z-]*:(iam|sts)::\d{12}:(.+)$/.exec(arn);
  if (!match) return undefined;
  const resource = match[2];
  if (resource === 'root') return { user: 'root', arn };
  const [kind, ...rest] = resource.split('/');
  if (kind === 'user' && rest.length) return { user: rest[rest.length - 1], arn };
  if (kind === 'assumed-role' && rest.length >= 2) return { user: `${rest[0]}/${rest.slice(1).join('/')}`, arn };
  if (kind === 'federated-user' && rest.length) return { user: `federated/${rest.join('/')}`, arn };
  return undefined;
}
