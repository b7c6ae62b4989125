// Project membership: who may bill a project and replay its cached answers. A project without
// members is open to every signed caller; one with members only to them.
//
// Members are user names as callerFromArn (caller.ts) gives them: `alice` (an IAM user),
// `AWSReservedSSO_DataScience_0a1b/alice` (a session-named role's user). A member
// `Role/*` is a whole role: it is exactly the name every caller of a role whose session name is
// chosen by the caller gets, and it also matches each `Role/<session>` user of a session-named role.
// So granting a role never depends on which roles the stack lists as session-named.
// Federated users follow the same rule: every one of them is the single caller `federated:*`
// (FEDERATED_USER), because each picks its own name. So a member `federated:bob` admits nobody (no
// caller is named so), and only a member `federated:*` would admit federated callers — all of them.

import { FEDERATED_USER } from './caller.ts';

/** The suffix that makes a member a whole role: `data-science/*`. */
export const ROLE_SUFFIX = '/*';

/** The member name that stands for every caller coming through `role`. */
export const roleMember = (role: string): string => `${role}${ROLE_SUFFIX}`;

/** Whether `user` (a caller's name) is one of `members`, directly or through its role. */
export function isMember(user: string, members: readonly string[]): boolean {
  const slash = user.indexOf('/');
  const role = slash > 0 ? roleMember(user.slice(0, slash)) : undefined;
  return members.some((m) => m === user || m === role);
}

export function notMemberMessage(stage: string, project: string, user: string): string {
  const refused = `Project "${project}" in stage ${stage} is open only to its members, and you (${user}) are not one. `;
  if (user === FEDERATED_USER) {
    // Granting this caller would grant everyone who may call GetFederationToken: no grant to offer.
    return (
      refused +
      'Federated users (sts:GetFederationToken) choose their own names, so the proxy cannot tell them apart: ' +
      'call with your IAM user or a role an admin can grant.'
    );
  }
  return refused + `An admin can add you: openai-wrapi projects grant --stage ${stage} --project "${project}" --user "${user}"`;
}
