import { ENV } from './contract.ts';
import type { Caller } from './proxy.ts';

/** IAM Identity Center's roles: AWS sets their session name to the signed-in user. */
const SSO_ROLE = /^AWSReservedSSO_/;

/**
 * The one user every federated-user ARN (`arn:aws:sts::ACCOUNT:federated-user/NAME`) is. Whoever
 * calls `sts:GetFederationToken` (PowerUserAccess may) picks NAME freely, and the ARN does not name
 * the IAM user behind it: NAME proves nothing. `*` is in no federated-user name and `:` in no IAM
 * user or role name, so no other caller is named so.
 */
export const FEDERATED_USER = 'federated:*';

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
 * - any federated user → `federated:*` (FEDERATED_USER): one user, whatever name its caller picked,
 *   for the same reason (`federated-user/bob` may be anyone allowed GetFederationToken).
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
  if (kind === 'federated-user' && rest.join('/')) return { user: FEDERATED_USER, arn };
  return undefined;
}

/** `OPENAI_WRAPI_SESSION_NAMED_ROLES`: role names, comma-separated. */
export function identityRules(env: Record<string, string | undefined>): IdentityRules {
  const roles = (env[ENV.sessionNamedRoles] ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  return { sessionNamedRoles: roles };
}
