import { ENV } from './contract.ts';
import type { Caller } from './proxy.ts';

/** IAM Identity Center's roles: AWS sets their session name to the signed-in user. */
const SSO_ROLE = /^AWSReservedSSO_/;

export interface IdentityRules {
  /**
   * Roles whose session name is the user, because their trust policy forces it
   * (`sts:RoleSessionName` = `${aws:username}`, or `sts:SourceIdentity`). Any other role's session
   * name is chosen by whoever assumes it, so it cannot name a user.
   */
  sessionNamedRoles?: readonly string[];
}

/**
 * The user name scopes use, from a verified principal ARN:
 * - `arn:aws:iam::1:user/path/alice` → `alice`; `arn:aws:iam::1:root` → `root`;
 * - an assumed role whose session name AWS sets or the stack trusts → `Role/session`;
 * - any other assumed role → `Role/*`: one user, the role, whatever session name the caller picked
 *   (else anyone allowed to assume a shared role could bill as `Role/alice`, or escape per-user
 *   limits with a fresh name per call);
 * - a federated user → `federated:name` (`:` is in no IAM user or role name, so it cannot collide).
 * Undefined for anything unrecognised.
 */
export function callerFromArn(arn: string, rules: IdentityRules = {}): Caller | undefined {
  const match = /^arn:aws[a-z-]*:(iam|sts)::\d{12}:(.+)$/.exec(arn);
  if (!match) return undefined;
  const resource = match[2];
  if (resource === 'root') return { user: 'root', arn };
  const [kind, ...rest] = resource.split('/');
  if (kind === 'user' && rest.length) return { user: rest[rest.length - 1], arn };
  if (kind === 'assumed-role' && rest.length >= 2) {
    const [role, ...session] = rest;
    const sessionNamed = SSO_ROLE.test(role) || (rules.sessionNamedRoles ?? []).includes(role);
    return { user: sessionNamed ? `${role}/${session.join('/')}` : `${role}/*`, arn };
  }
  if (kind === 'federated-user' && rest.length) return { user: `federated:${rest.join('/')}`, arn };
  return undefined;
}

/** `OPENAI_WRAPI_SESSION_NAMED_ROLES`: role names, comma-separated. */
export function identityRules(env: Record<string, string | undefined>): IdentityRules {
  const roles = (env[ENV.sessionNamedRoles] ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  return { sessionNamedRoles: roles };
}
