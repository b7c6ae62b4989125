// Project membership: who may bill a project and replay its cached answers. A project without
// members is open to every signed caller; one with members only to them.
//
// Members are user names as callerFromArn (caller.ts) gives them: `alice` (an IAM user),
// `federated:bob`, `AWSReservedSSO_DataScience_0a1b/alice` (a session-named role's user). A member
// `Role/*` is a whole role: it is exactly the name every caller of a role whose session name is
// chosen by the caller gets, and it also matches each `Role/<session>` user of a session-named role.
// So granting a role never depends on which roles the stack lists as session-named.

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
  return (
    `Project "${project}" in stage ${stage} is open only to its members, and you (${user}) are not one. ` +
    `An admin can add you: openai-wrapi projects grant --stage ${stage} --project "${project}" --user "${user}"`
  );
}
