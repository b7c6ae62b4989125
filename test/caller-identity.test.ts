// Federated users pick their own names: `sts:GetFederationToken(Name=…)` lets any IAM user allowed to
// call it (PowerUserAccess is) sign as `arn:aws:sts::ACCOUNT:federated-user/<any name>`, an ARN that
// does not name the IAM user behind it. So every federated-user ARN is one caller, `federated:*`,
// like a role whose session name its caller picks is `Role/*`: a fresh name per call cannot escape a
// per-user limit, and naming oneself after a member cannot get into a member-only project.
// Checked on the mapping itself, on membership, and end to end through the Lambda handler with
// function-URL events as AWS writes them for a federated user (over dynalite and the fake OpenAI).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { callerFromArn, FEDERATED_USER } from '../runtime/core/caller.ts';
import { isMember, notMemberMessage } from '../runtime/core/membership.ts';
import { invokeStreaming, type StreamingResult } from './helpers/awslambda-stub.ts';
import { setDeployedEnv } from './helpers/deployed-env.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';

const ACCOUNT = '123456789012';
const federated = (name: string, partition = 'aws') => `arn:${partition}:sts::${ACCOUNT}:federated-user/${name}`;

const mapping = suite('federated users: the mapping');

mapping('every federated-user ARN is one user, whatever name its caller chose', () => {
  assert.is(FEDERATED_USER, 'federated:*');
  // GetFederationToken names: 2-32 of letters, digits and = , . @ _ -
  for (const name of ['bob', 'm1', 'm2', 'alice', 'root', 'y=z,w.v@u_t-s', 'DataScientist']) {
    const caller = callerFromArn(federated(name));
    assert.is(caller?.user, 'federated:*', name);
    // The verified ARN is kept as it is (logs name it); only the user scopes are built on is collapsed.
    assert.is(caller?.arn, federated(name));
  }
  for (const partition of ['aws-us-gov', 'aws-cn']) assert.is(callerFromArn(federated('bob', partition))?.user, 'federated:*');
  // No stack setting makes the name count: no role is involved, and none of its rules applies.
  assert.is(callerFromArn(federated('bob'), { sessionNamedRoles: ['federated-user', 'bob', 'federated'] })?.user, 'federated:*');
  // An ARN without a name is not a caller.
  assert.is(callerFromArn(`arn:aws:sts::${ACCOUNT}:federated-user/`), undefined);
});

mapping('the federated user collides with no other caller', () => {
  // IAM user names have no ':' or '*'; role callers always carry a '/'.
  for (const arn of [
    `arn:aws:iam::${ACCOUNT}:user/federated`,
    `arn:aws:iam::${ACCOUNT}:user/division/federated`,
    `arn:aws:sts::${ACCOUNT}:assumed-role/federated/anything`,
    `arn:aws:sts::${ACCOUNT}:assumed-role/federated-user/bob`,
  ]) {
    assert.is.not(callerFromArn(arn)?.user, FEDERATED_USER, arn);
  }
  assert.is(callerFromArn(`arn:aws:sts::${ACCOUNT}:assumed-role/federated-user/bob`)?.user, 'federated-user/*');
});

mapping('membership: a member named after a federated user admits no federated caller', () => {
  const user = (arn: string) => callerFromArn(arn, { sessionNamedRoles: ['Analysts'] })!.user;
  const members = ['federated:bob', 'alice', 'DataScientist/*'];
  for (const name of ['bob', 'alice', 'mallory']) assert.not.ok(isMember(user(federated(name)), members), name);
  // Nor is a federated caller a member through any role or IAM-user entry.
  assert.not.ok(isMember(user(federated('DataScientist')), members));
  // Only the one federated user itself, as a member, admits federated callers (all of them).
  assert.ok(isMember(user(federated('anyone')), [FEDERATED_USER]));
  // The refusal says why instead of proposing to grant a name that identifies nobody.
  const message = notMemberMessage('dev', 'vault', user(federated('bob')));
  assert.match(message, 'you (federated:*) are not one');
  assert.match(message, 'GetFederationToken');
  assert.not.match(message, 'projects grant');
  // Everyone else still gets the grant command.
  assert.match(notMemberMessage('dev', 'vault', 'alice'), 'openai-wrapi projects grant --stage dev --project "vault" --user "alice"');
});

mapping.run();

// End to end: the proxy Lambda handler built from a deployed function's environment.

import { IAM_EVENT, jsonEvent } from './helpers/url-events.ts';
const TABLE = 'openai-wrapi-caller-identity-test';
const MODEL = 'gpt-4o-mini';

type Handler = (event: FunctionUrlEvent, stream: import('node:stream').Writable, context: unknown) => Promise<void>;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let proxy: Handler;
let admin: (event: unknown) => Promise<any>;

/**
 * The function-URL event AWS writes for a request signed with GetFederationToken credentials:
 * temporary keys (ASIA…), and a caller id / user id of `account:name` — the chosen name again.
 */
function eventAs(name: string | undefined, project: string, content: string): FunctionUrlEvent {
  const e = jsonEvent(IAM_EVENT, { model: MODEL, messages: [{ role: 'user', content: `${content} fake:words=3` }], max_completion_tokens: 16 }, project);
  if (name !== undefined) {
    const iam = e.requestContext.authorizer!.iam! as Record<string, unknown>;
    Object.assign(iam, { accessKey: 'ASIAIOSFODNN7EXAMPLE', callerId: `${ACCOUNT}:${name}`, userId: `${ACCOUNT}:${name}`, userArn: federated(name) });
  }
  return e;
}

const json = (r: StreamingResult) => JSON.parse(r.body);

async function usageRows(project: string): Promise<any[]> {
  const report = await admin({ action: 'usage' });
  assert.ok(report.ok, JSON.stringify(report));
  return report.rows.filter((r: { project: string }) => r.project === project);
}

const lambda = suite('federated users: through the Lambda handler');

lambda.before(async () => {
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  await ensureLedgerTable(dynamo.client(), TABLE);
  setDeployedEnv({
    table: TABLE, dynamodbEndpoint: dynamo.endpoint, upstreamUrl: fake.url, apiKey: fake.apiKey,
    // Every call reads the limits and members again: an admin change applies to the next call.
    extra: { OPENAI_WRAPI_POLICY_CACHE_MS: '0' },
  });
  proxy = (await import('../runtime/lambda/proxy.ts')).handler as unknown as Handler;
  admin = (await import('../runtime/lambda/admin.ts')).handler as (event: unknown) => Promise<any>;
  for (const project of ['fed-shared', 'fed-vault']) assert.ok((await admin({ action: 'setLimit', project, limit: 5 })).ok);
  const granted = await admin({ action: 'grantMember', project: 'fed-vault', user: 'alice' });
  assert.ok(granted.ok, JSON.stringify(granted));
  // A federated name cannot be granted: it would admit nobody (every federated caller is federated:*).
  const refused = await admin({ action: 'grantMember', project: 'fed-vault', user: 'federated:bob' });
  assert.equal([refused.ok, refused.error?.code], [false, 'invalid_member']);
});

lambda.after(async () => {
  await fake?.close();
  await dynamo?.close();
});

lambda('two federated names are one user: billed together, and one per-user limit binds both', async () => {
  const first = await invokeStreaming(proxy, eventAs('m1', 'fed-shared', 'first'));
  assert.is(first.statusCode, 200, first.body);
  const [row] = await usageRows('fed-shared');
  assert.is(row.user, 'federated:*');
  assert.is(row.requests, 1);
  // The federated user may spend no more than it already has: the next call by any name is refused.
  const set = await admin({ action: 'setLimit', project: 'fed-shared', user: 'federated:*', limit: row.spend });
  assert.ok(set.ok, JSON.stringify(set));
  const before = fake.requests.length;
  for (const name of ['m2', 'brand-new-name', 'm1']) {
    const r = await invokeStreaming(proxy, eventAs(name, 'fed-shared', `again as ${name}`));
    assert.is(r.statusCode, 429, `${name}: ${r.body}`);
    assert.is(json(r).error.code, 'budget_exceeded');
    assert.match(json(r).error.message, 'federated:*');
  }
  assert.is(fake.requests.length, before, 'nothing refused was forwarded');
  // An IAM user is not the federated user: its calls still pass.
  const alice = await invokeStreaming(proxy, eventAs(undefined, 'fed-shared', 'alice'));
  assert.is(alice.statusCode, 200, alice.body);
  assert.equal((await usageRows('fed-shared')).map((x) => [x.user, x.requests]).sort(), [['alice', 1], ['federated:*', 1]]);
});

lambda('a federated caller named after a member does not get into the member-only project', async () => {
  const before = fake.requests.length;
  for (const name of ['bob', 'alice']) {
    const r = await invokeStreaming(proxy, eventAs(name, 'fed-vault', `vault as ${name}`));
    assert.is(r.statusCode, 403, `${name}: ${r.body}`);
    assert.is(json(r).error.code, 'project_access_denied');
    assert.match(json(r).error.message, 'you (federated:*) are not one');
  }
  assert.is(fake.requests.length, before);
  // The IAM user alice, a member, is admitted; only her call is recorded.
  const alice = await invokeStreaming(proxy, eventAs(undefined, 'fed-vault', 'alice in the vault'));
  assert.is(alice.statusCode, 200, alice.body);
  assert.equal((await usageRows('fed-vault')).map((x) => x.user), ['alice']);
});

lambda.run();
