// Project membership end to end: the admin API, the SDK and the CLI grant, revoke and list members;
// the local stack, called with the official `openai` client, refuses non-members with 403 before
// the cache or the ledger is touched, and a revoke reaches other instances with their policy cache.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import OpenAI from 'openai';
import { settled } from './helpers/stack.ts';
import { childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';
import { quietLogger } from '../runtime/local/stack.ts';
import { createAdmin } from '../runtime/core/admin.ts';
import { callerFromArn } from '../runtime/core/caller.ts';
import { isMember } from '../runtime/core/membership.ts';
import { getMembers, grantMember, revokeMember, WrapiAdminError, WrapiConfigError } from '../sdk/index.ts';

const POLICY_CACHE_MS = 60_000;
let t: SdkStack;
/** The stack's clock runs ahead by this much: a test moves it past the policy cache. */
let ahead = 0;
const root = new URL('..', import.meta.url).pathname;
const say = (content: string) => [{ role: 'user' as const, content }];

test.before(async () => {
  t = await startSdkStack([['alice', false], ['bob', false]], {
    env: { OPENAI_WRAPI_POLICY_CACHE_MS: String(POLICY_CACHE_MS) },
    stack: { now: () => Date.now() + ahead },
  });
});
test.after(() => t.close());

const forwarded = () => t.fake.requests.length;
const rowsOf = async (project: string) =>
  (await t.admin({ action: 'usage' })).rows.filter((r: { project: string }) => r.project === project);
const committedOf = async (project: string) =>
  (await t.admin({ action: 'listLimits', project })).limits.map((l: { committed: number }) => l.committed);

async function restricted(project: string, ...members: string[]) {
  assert.ok((await t.admin({ action: 'setLimit', project, limit: 10 })).ok);
  for (const user of members) assert.ok((await t.admin({ action: 'grantMember', project, user })).ok);
}

async function refused(call: Promise<unknown>, project: string, user: string) {
  const err = (await call.catch((e) => e)) as InstanceType<typeof OpenAI.PermissionDeniedError>;
  assert.instance(err, OpenAI.PermissionDeniedError);
  assert.is(err.status, 403);
  assert.is(err.code, 'project_access_denied');
  assert.match(err.message, `Project "${project}" in stage dev is open only to its members, and you (${user}) are not one`);
  assert.match(err.message, `openai-wrapi projects grant --stage dev --project "${project}" --user "${user}"`);
  assert.is(err.headers.get('x-should-retry'), 'false');
}

test('members: role members match every caller of the role; users match themselves only', () => {
  const user = (arn: string) => callerFromArn(arn, { sessionNamedRoles: ['Analysts'] })!.user;
  const members = ['alice', 'DataScientist/*', 'AWSReservedSSO_Dev_0a1b/*', 'Analysts/dan'];
  assert.ok(isMember(user('arn:aws:iam::123456789012:user/alice'), members));
  assert.not.ok(isMember(user('arn:aws:iam::123456789012:user/alicia'), members));
  // A role whose session name its caller picks is one user, `Role/*`: the role member is exactly it.
  assert.ok(isMember(user('arn:aws:sts::123456789012:assumed-role/DataScientist/anything'), members));
  // Session-named roles (Identity Center, or listed by the stack): the role member admits each user.
  assert.ok(isMember(user('arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0a1b/carol@example.com'), members));
  assert.ok(isMember(user('arn:aws:sts::123456789012:assumed-role/Analysts/dan'), members));
  assert.not.ok(isMember(user('arn:aws:sts::123456789012:assumed-role/Analysts/erin'), members));
  // Not a prefix match: another role that starts the same is not a member.
  assert.not.ok(isMember(user('arn:aws:sts::123456789012:assumed-role/DataScientists/x'), members));
  assert.not.ok(isMember('federated:alice', members));
  // A federated user names itself: `federated-user/alice` is the one federated caller, not alice.
  assert.not.ok(isMember(user('arn:aws:sts::123456789012:federated-user/alice'), members));
  assert.not.ok(isMember(user('arn:aws:sts::123456789012:federated-user/bob'), [...members, 'federated:bob']));
});

test('a project with members: a member passes; anyone else gets 403 and nothing is forwarded, reserved or recorded', async () => {
  await restricted('secret', 'alice');
  const ok = await t.client({ user: 'alice', project: 'secret', caching: false }).chat.completions.create({
    model: 'gpt-4o-mini', messages: say('fake:words=2'),
  });
  assert.ok(ok.id);
  await settled(t, async () => (await rowsOf('secret')).length === 1);
  const [spentBefore] = await committedOf('secret');
  const before = forwarded();
  for (const user of ['bob', 'default']) {
    // maxRetries: the refusal is final, so the client must not retry it either.
    const c = t.client({ user, project: 'secret', caching: false, maxRetries: 2 });
    await refused(c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') }), 'secret', user);
    await refused(c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi'), stream: true }), 'secret', user);
    await refused(c.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' }), 'secret', user);
  }
  assert.is(forwarded(), before, 'refused calls never reach OpenAI');
  await new Promise((r) => setTimeout(r, 50)); // anything recorded in the background would land by now
  assert.equal((await rowsOf('secret')).map((r: { user: string }) => r.user), ['alice'], 'no usage row for a non-member');
  assert.equal(await committedOf('secret'), [spentBefore], 'nothing reserved');
  // A project without members is open to every signed caller, as before.
  await restricted('open');
  assert.ok((await t.client({ user: 'bob', project: 'open', caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: say('x') })).id);
});

test("a non-member cannot replay a member's cached answer; the member still can", async () => {
  await restricted('cached', 'alice');
  const request = { model: 'gpt-4o-mini', messages: say('the cached one fake:words=3') };
  const first = await t.client({ user: 'alice', project: 'cached' }).chat.completions.create(request).withResponse();
  assert.is(first.response.headers.get('openai-proxy-cache'), 'miss');
  await settled(t, async () => (await rowsOf('cached')).some((r: { requests: number }) => r.requests === 1));
  const before = forwarded();
  await refused(t.client({ user: 'bob', project: 'cached' }).chat.completions.create(request), 'cached', 'bob');
  // The answer is in the cache: the member gets it replayed.
  const again = await t.client({ user: 'alice', project: 'cached' }).chat.completions.create(request).withResponse();
  assert.is(again.response.headers.get('openai-proxy-cache'), 'hit');
  assert.equal(again.data.choices, first.data.choices);
  assert.is(forwarded(), before);
  await settled(t, async () => (await rowsOf('cached')).some((r: { cacheHits: number }) => r.cacheHits === 1));
  const rows = await rowsOf('cached');
  assert.equal(rows.map((r: { user: string }) => r.user), ['alice'], 'no cache hit recorded for the non-member');
});

test('a revoke reaches another instance once its policy cache expires; this instance at once', async () => {
  await restricted('window', 'alice');
  const alice = t.client({ user: 'alice', project: 'window', caching: false });
  const call = () => alice.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:words=1') });
  assert.ok((await call()).id); // this instance now holds the project's policy
  // Another instance over the same ledger (on AWS: the admin function, or another proxy instance):
  // an admin of its own, whose writes cannot clear this instance's policy cache.
  const dev = t.stack.stages.dev;
  const other = createAdmin({ stage: 'dev', ledger: dev.ledger, cache: dev.cache, log: quietLogger });
  assert.ok((await other({ action: 'revokeMember', project: 'window', user: 'alice' })).ok);
  assert.ok((await other({ action: 'grantMember', project: 'window', user: 'bob' })).ok);
  assert.ok((await call()).id, 'within the policy cache the revoke is not seen yet');
  ahead += POLICY_CACHE_MS + 1;
  await refused(call(), 'window', 'alice');
  // Here the admin's own writes clear the cache: a grant applies at once.
  assert.ok((await t.admin({ action: 'grantMember', project: 'window', user: 'alice' })).ok);
  assert.ok((await call()).id);
});

test('admin API: grant (idempotent), list, revoke; the last revoke opens the project; bad input changes nothing', async () => {
  const grant = await t.admin({ action: 'grantMember', project: 'admin-api', user: 'carol' });
  assert.equal(grant, { ok: true, stage: 'dev', project: 'admin-api', member: 'carol', added: true });
  assert.is((await t.admin({ action: 'grantMember', project: 'admin-api', user: 'carol' })).added, false);
  assert.is((await t.admin({ action: 'grantMember', project: 'admin-api', role: 'data-science' })).member, 'data-science/*');
  const listed = await t.admin({ action: 'listMembers', project: 'admin-api' });
  assert.equal(listed.projects, [{ project: 'admin-api', members: ['carol', 'data-science/*'] }]);
  assert.ok((await t.admin({ action: 'listMembers' })).projects.length > 1, 'every restricted project without --project');
  assert.equal((await t.admin({ action: 'listMembers', project: 'prod-only' }, 'prod')).projects, [], 'stages are separate');

  const before = await t.admin({ action: 'listMembers' });
  const cases: [Record<string, unknown>, string, string | null][] = [
    [{ project: 'admin-api' }, 'invalid_member', null],
    [{ project: 'admin-api', user: 'a', role: 'b' }, 'invalid_member', null],
    [{ project: 'admin-api', user: '*' }, 'invalid_member', 'user'],
    [{ project: 'admin-api', user: 'al*' }, 'invalid_member', 'user'],
    [{ project: 'admin-api', user: 'two words' }, 'invalid_member', 'user'],
    [{ project: 'admin-api', user: 'a#b' }, 'invalid_member', 'user'],
    [{ project: 'admin-api', user: 'x'.repeat(257) }, 'invalid_member', 'user'],
    [{ project: 'admin-api', user: 42 }, 'invalid_member', 'user'],
    [{ project: 'admin-api', role: 'a/b' }, 'invalid_member', 'role'],
    [{ project: 'admin-api', role: '*' }, 'invalid_member', 'role'],
    [{ project: 'a#b', user: 'carol' }, 'invalid_name', 'project'],
    [{ user: 'carol' }, 'invalid_name', 'project'],
  ];
  for (const action of ['grantMember', 'revokeMember']) {
    for (const [req, code, param] of cases) {
      const out = await t.admin({ action, ...req });
      assert.is(out.ok, false, JSON.stringify(req));
      assert.is(out.error.code, code, JSON.stringify(req));
      assert.is(out.error.param, param, JSON.stringify(req));
      assert.is(out.error.type, 'invalid_request_error');
    }
  }
  // A federated caller is always `federated:*` (any name it picks): no such member can be granted.
  for (const user of ['federated:bob', 'federated:*', 'Federated:bob']) {
    const out = await t.admin({ action: 'grantMember', project: 'admin-api', user });
    assert.equal([out.ok, out.error?.code, out.error?.param], [false, 'invalid_member', 'user'], user);
    assert.match(out.error.message, /Federated users .* choose their own names/);
  }
  const missing = await t.admin({ action: 'revokeMember', project: 'admin-api', user: 'dave' });
  assert.is(missing.error.code, 'member_not_found');
  assert.equal(await t.admin({ action: 'listMembers' }), before, 'refused requests changed nothing');

  assert.equal(await t.admin({ action: 'revokeMember', project: 'admin-api', user: 'carol' }), { ok: true, stage: 'dev', project: 'admin-api', member: 'carol' });
  assert.ok((await t.admin({ action: 'revokeMember', project: 'admin-api', role: 'data-science' })).ok);
  assert.equal((await t.admin({ action: 'listMembers', project: 'admin-api' })).projects, []);
});

test('SDK: grantMember, getMembers, revokeMember through the admin function; a non-admin is refused', async () => {
  assert.equal(await grantMember({ staging: 'dev', project: 'sdk', user: 'alice' }), { project: 'sdk', member: 'alice', added: true });
  assert.equal(await grantMember({ staging: 'dev', project: 'sdk', role: 'ml' }), { project: 'sdk', member: 'ml/*', added: true });
  assert.equal(await getMembers({ staging: 'dev', project: 'sdk' }), { stage: 'dev', projects: [{ project: 'sdk', members: ['alice', 'ml/*'] }] });
  assert.equal(await revokeMember({ staging: 'dev', project: 'sdk', role: 'ml' }), { project: 'sdk', member: 'ml/*' });
  const err = await revokeMember({ staging: 'dev', project: 'sdk', role: 'ml' }).catch((e) => e);
  assert.instance(err, WrapiAdminError);
  assert.is(err.code, 'member_not_found');
  // Checked before anything is sent.
  assert.instance(await grantMember({ staging: 'dev', project: 'sdk' }).catch((e) => e), WrapiConfigError);
  assert.instance(await grantMember({ staging: 'dev', project: 'sdk', user: ' ' }).catch((e) => e), WrapiConfigError);
  assert.instance(await grantMember({ staging: 'dev', project: 'sdk', user: 'a', role: 'b' }).catch((e) => e), WrapiConfigError);
  const denied = await grantMember({ staging: 'dev', project: 'sdk', user: 'bob', profile: 'bob' }).catch((e) => e);
  assert.is(denied.code, 'access_denied');
  assert.equal((await getMembers({ staging: 'dev', project: 'sdk' })).projects, [{ project: 'sdk', members: ['alice'] }]);
});

interface Run { code: number; stdout: string; stderr: string }
function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', ...args], { cwd: root, env: childEnv(t.env) }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('CLI: projects grant, ls, revoke as text and --json; exit 2 for bad usage, 1 for a refusal', async () => {
  const [grantUser, grantRole, help] = await Promise.all([
    cli(['projects', 'grant', '--project', 'cli', '--user', 'alice']),
    cli(['projects', 'grant', '--project', 'cli', '--role', 'analysts', '--json']),
    cli(['projects', '--help']),
  ]);
  assert.is(grantUser.code, 0, grantUser.stderr);
  assert.match(grantUser.stdout, 'Added user "alice" to project "cli" in stage dev.');
  assert.is(grantRole.code, 0, grantRole.stderr);
  assert.equal(JSON.parse(grantRole.stdout), { project: 'cli', member: 'analysts/*', added: true });
  for (const sub of ['grant', 'revoke', 'ls']) assert.match(help.stdout, `projects ${sub}`);

  const [ls, lsJson, usage, both, empty, revoke] = await Promise.all([
    cli(['projects', 'ls', '--project', 'cli']),
    cli(['projects', 'ls', '--project', 'cli', '--json']),
    cli(['projects', 'grant', '--project', 'cli']),
    cli(['projects', 'grant', '--project', 'cli', '--user', 'a', '--role', 'b']),
    cli(['projects', 'revoke', '--project', 'cli', '--user', '']),
    cli(['projects', 'revoke', '--project', 'cli', '--user', 'nobody']),
  ]);
  assert.is(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /PROJECT +MEMBER/);
  assert.match(ls.stdout, /cli +alice/);
  assert.match(ls.stdout, /cli +analysts\/\*/);
  assert.equal(JSON.parse(lsJson.stdout), { stage: 'dev', projects: [{ project: 'cli', members: ['alice', 'analysts/*'] }] });
  for (const r of [usage, both, empty]) {
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1);
  }
  assert.match(usage.stderr, 'give exactly one of --user NAME or --role ROLE');
  assert.is(revoke.code, 1);
  assert.match(revoke.stderr, /^openai-wrapi: "nobody" is not a member of project "cli" in stage dev\.\n$/);

  const [gone, goneRole] = await Promise.all([
    cli(['projects', 'revoke', '--project', 'cli', '--user', 'alice']),
    cli(['projects', 'revoke', '--project', 'cli', '--role', 'analysts']),
  ]);
  assert.match(gone.stdout, 'Removed user "alice" from project "cli" in stage dev.');
  assert.match(goneRole.stdout, 'Removed role "analysts" (everyone who comes through it) from project "cli"');
  const open = await cli(['projects', 'ls', '--project', 'cli']);
  assert.match(open.stdout, 'Project "cli" in stage dev has no members: every signed caller may use it.');
});

test.run();
