// The lean DynamoDB client (runtime/store/dynamo-http.ts) on its own: its signatures against
// @smithy/signature-v4, what it puts on the wire, DynamoDB's errors, retries, credentials, and that
// its outputs have the SDK client's shapes (both against dynalite). The ledger suites run over it in
// ledger.test.ts, ledger-faults.test.ts and ledger-properties.test.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BatchGetItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDynamoHttpClient, type AwsCredentials } from '../runtime/store/dynamo-http.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { amzDateAt, amzDateOf, createJsonPostSigner, sha256Hex, signRequest } from '../runtime/store/sigv4-signer.ts';
import { startDynalite } from './helpers/dynalite.ts';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'session-token-EXAMPLE';
const BODY_MARKER = 'body-marker-7f3a';

async function smithyAuthorization(o: {
  credentials: AwsCredentials; region: string; date: Date; host: string; target: string; body: string;
}): Promise<string> {
  const signer = new SignatureV4({ credentials: o.credentials, region: o.region, service: 'dynamodb', sha256: Sha256, applyChecksum: false });
  const [hostname, port] = o.host.split(':');
  const req = await signer.sign(
    {
      method: 'POST', protocol: 'https:', hostname, port: port ? Number(port) : undefined, path: '/', query: {},
      headers: { host: o.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': o.target },
      body: o.body,
    },
    { signingDate: o.date },
  );
  return req.headers.authorization;
}

const signing = suite('sigv4 signer');

signing('same inputs as @smithy/signature-v4 give the same Authorization header', async () => {
  const cases = [
    { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET }, region: 'us-east-1', date: new Date('2026-11-26T10:00:00Z'), host: 'dynamodb.us-east-1.amazonaws.com' },
    { credentials: { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN }, region: 'eu-west-2', date: new Date('2026-12-31T23:59:59Z'), host: 'dynamodb.eu-west-2.amazonaws.com' },
    // Same secret, next day: the cached signing key must not be reused.
    { credentials: { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN }, region: 'eu-west-2', date: new Date('2027-01-01T00:00:01Z'), host: 'dynamodb.eu-west-2.amazonaws.com' },
    { credentials: { accessKeyId: 'x', secretAccessKey: 'other' }, region: 'us-east-1', date: new Date('2027-01-01T00:00:01Z'), host: '127.0.0.1:8000' },
  ];
  for (const c of cases) {
    for (const [target, body] of [
      ['DynamoDB_20120810.UpdateItem', JSON.stringify({ TableName: 't', Key: { pk: { S: 'a  b' } } })],
      ['DynamoDB_20120810.Query', '{}'],
    ]) {
      const headers = signRequest({
        credentials: c.credentials, region: c.region, service: 'dynamodb', amzDate: amzDateOf(c.date),
        headers: { host: c.host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': target },
        payloadHash: sha256Hex(body),
      });
      assert.is(headers.authorization, await smithyAuthorization({ ...c, target, body }), `${c.region} ${c.date.toISOString()} ${target}`);
      assert.is(headers['x-amz-security-token'], c.credentials.sessionToken);
    }
  }
});

signing('the JSON POST signer gives smithy\'s header across a day change, a credential refresh and a new token', async () => {
  const host = 'dynamodb.eu-west-2.amazonaws.com';
  const sign = createJsonPostSigner({ region: 'eu-west-2', service: 'dynamodb', host, contentType: 'application/x-amz-json-1.0' });
  const withToken = { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN };
  // One signer instance through the sequence, so its cached signing key and token line must roll over.
  const steps: [AwsCredentials, string][] = [
    [withToken, '2026-11-30T23:59:59.999Z'],
    [withToken, '2026-12-01T00:00:00.000Z'], // next day: new signing key
    [{ ...withToken, secretAccessKey: 'rotated/SECRET', sessionToken: 'token-2' }, '2026-12-01T00:00:01.000Z'], // refresh, same day
    [{ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'rotated/SECRET' }, '2026-12-01T00:00:02.000Z'], // no token
    [withToken, '2026-11-30T23:59:58.000Z'], // back to the first key: recomputed, not confused
  ];
  for (const [credentials, iso] of steps) {
    for (const [target, body] of [
      ['DynamoDB_20120810.UpdateItem', JSON.stringify({ TableName: 't', Key: { pk: { S: 'é  b' } } })],
      ['DynamoDB_20120810.GetItem', '{}'],
    ]) {
      const date = new Date(iso);
      const amzDate = amzDateAt(date.getTime());
      assert.is(amzDate, amzDateOf(date));
      const expected = await smithyAuthorization({ credentials, region: 'eu-west-2', date, host, target, body });
      assert.is(sign(credentials, amzDate, target, sha256Hex(body)), expected, `${iso} ${target}`);
      // And the same as the generic signer.
      const headers = signRequest({
        credentials, region: 'eu-west-2', service: 'dynamodb', amzDate,
        headers: { host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': target }, payloadHash: sha256Hex(Buffer.from(body)),
      });
      assert.is(headers.authorization, expected);
    }
  }
});

signing('amzDateAt formats each second once and follows the clock across seconds and days', () => {
  for (const iso of ['2026-11-26T10:00:00.000Z', '2026-11-26T10:00:00.999Z', '2026-11-26T10:00:01.000Z', '2026-12-31T23:59:59.999Z', '2027-01-01T00:00:00.000Z', '2026-11-26T10:00:00.500Z']) {
    assert.is(amzDateAt(Date.parse(iso)), amzDateOf(new Date(iso)), iso);
  }
});

// ------------------------------------------------------------------------------- a scripted server

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }
type Answer = { status: number; body: string } | 'hang' | 'reset';

/** A server answering each request with the next scripted answer (the last one repeats). */
async function scripted(answers: Answer[]) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const answer = answers.length > 1 ? answers.shift()! : answers[0];
      if (answer === 'hang') return;
      if (answer === 'reset') return req.socket.destroy();
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'req-1' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    seen,
    endpoint,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const update = () =>
  new UpdateItemCommand({
    TableName: 'ledger',
    Key: { pk: { S: 'p' }, sk: { S: BODY_MARKER } },
    UpdateExpression: 'ADD #c :a',
    ExpressionAttributeNames: { '#c': 'committed' },
    ExpressionAttributeValues: { ':a': { N: '5' } },
  });
const ok = (body: object) => ({ status: 200, body: JSON.stringify(body) });
const credentials = { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN };

const wire = suite('lean client on the wire');

wire('POST / with the JSON input, the target, identity encoding and a smithy-identical signature', async () => {
  const s = await scripted([ok({ Attributes: { committed: { N: '5' } } })]);
  const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'eu-west-2', credentials });
  const command = update();
  const out = await client.send(command);
  assert.equal(out.Attributes, { committed: { N: '5' } });
  assert.equal(out.$metadata, { httpStatusCode: 200, requestId: 'req-1', attempts: 1 });
  const [req] = s.seen;
  assert.is(req.method, 'POST');
  assert.is(req.url, '/');
  assert.equal(JSON.parse(req.body), command.input);
  assert.is(req.headers['content-type'], 'application/x-amz-json-1.0');
  assert.is(req.headers['x-amz-target'], 'DynamoDB_20120810.UpdateItem');
  assert.is(req.headers['accept-encoding'], 'identity');
  assert.is(req.headers['x-amz-security-token'], TOKEN);
  assert.is(req.headers.connection, 'keep-alive');
  const amzDate = req.headers['x-amz-date'] as string;
  const date = new Date(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const host = s.endpoint.slice('http://'.length);
  assert.is(req.headers.host, host);
  const expected = await smithyAuthorization({ credentials, region: 'eu-west-2', date, host, target: 'DynamoDB_20120810.UpdateItem', body: req.body });
  assert.is(req.headers.authorization, expected);
  client.destroy();
  await s.close();
});

wire('a body with non-ASCII text: Content-Length in bytes, the body arrives intact and the signature covers it', async () => {
  const s = await scripted([ok({})]);
  const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'eu-west-2', credentials });
  const input = { TableName: 'ledger', Key: { pk: { S: 'p' }, sk: { S: 'U#projé#arn:aws:iam::1:user/zoë#模型' } } };
  await client.send(new GetItemCommand(input));
  const [req] = s.seen;
  assert.equal(JSON.parse(req.body), input);
  assert.is(Number(req.headers['content-length']), Buffer.byteLength(req.body));
  const amzDate = req.headers['x-amz-date'] as string;
  const date = new Date(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const host = s.endpoint.slice('http://'.length);
  const expected = await smithyAuthorization({ credentials, region: 'eu-west-2', date, host, target: 'DynamoDB_20120810.GetItem', body: req.body });
  assert.is(req.headers.authorization, expected);
  client.destroy();
  await s.close();
});

wire('each command class maps to its operation; others are refused', async () => {
  const s = await scripted([ok({})]);
  const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'us-east-1', credentials });
  const Key = { pk: { S: 'p' }, sk: { S: 's' } };
  await client.send(new GetItemCommand({ TableName: 'ledger', Key }));
  await client.send(new BatchGetItemCommand({ RequestItems: { ledger: { Keys: [Key] } } }));
  await client.send(new QueryCommand({ TableName: 'ledger' }));
  await client.send(new PutItemCommand({ TableName: 'ledger', Item: Key }));
  await client.send(new DeleteItemCommand({ TableName: 'ledger', Key }));
  await client.send(update());
  assert.equal(s.seen.map((r) => r.headers['x-amz-target']), ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'DeleteItem', 'UpdateItem'].map((o) => `DynamoDB_20120810.${o}`));
  const error = await client.send(new CreateTableCommand({ TableName: 'x' } as never)).catch((e) => e);
  assert.instance(error, TypeError);
  assert.is(s.seen.length, 6, 'nothing sent for an unknown command');
  client.destroy();
  await s.close();
});

wire('DynamoDB errors: name after #, message or Message, status; refusals are not retried', async () => {
  for (const [body, message] of [
    [{ __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException', message: 'The conditional request failed' }, 'The conditional request failed'],
    [{ __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException', Message: 'capitalised' }, 'capitalised'],
  ] as const) {
    const s = await scripted([{ status: 400, body: JSON.stringify(body) }]);
    const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'us-east-1', credentials });
    const error = await client.send(update()).catch((e) => e);
    assert.is(error.name, 'ConditionalCheckFailedException');
    assert.is(error.message, message);
    assert.is(error.$metadata.httpStatusCode, 400);
    assert.is(s.seen.length, 1);
    client.destroy();
    await s.close();
  }
});

wire('retries 5xx, throttling, resets and timeouts up to 3 attempts; not validation errors', async () => {
  const throttle = { status: 400, body: JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException', message: 'slow down' }) };
  const cases: [Answer[], number, string | undefined][] = [
    [[{ status: 500, body: '' }, { status: 503, body: 'x' }, ok({})], 3, undefined],
    [[throttle], 3, 'ProvisionedThroughputExceededException'],
    [[{ status: 400, body: JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException' }) }, ok({})], 2, undefined],
    [['reset', ok({})], 2, undefined],
    [['hang', ok({})], 2, undefined],
    [[{ status: 400, body: JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'bad' }) }], 1, 'ValidationException'],
  ];
  for (const [answers, attempts, failure] of cases) {
    const s = await scripted(answers);
    const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'us-east-1', credentials, requestTimeoutMs: 100 });
    const result = await client.send(update()).then(
      (out) => ({ out }),
      (error) => ({ error }),
    );
    assert.is(s.seen.length, attempts, JSON.stringify(answers[0]));
    if (failure) assert.is((result as { error: Error }).error.name, failure);
    else assert.is((result as { out: any }).out.$metadata.attempts, attempts);
    client.destroy();
    await s.close();
  }
});

wire('a send asked for one attempt is not retried, even on a timeout (a write that is not idempotent)', async () => {
  for (const answers of [['hang', ok({})], [{ status: 500, body: '' }, ok({})]] as Answer[][]) {
    const s = await scripted(answers);
    const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'us-east-1', credentials, requestTimeoutMs: 100 });
    const error = await client.send(update(), { maxAttempts: 1 }).catch((e) => e);
    assert.instance(error, Error);
    assert.is(s.seen.length, 1, JSON.stringify(answers[0]));
    client.destroy();
    await s.close();
  }
});

wire('no credentials and no request body in any error', async () => {
  const s = await scripted([{ status: 500, body: `echo ${SECRET} ${BODY_MARKER}` }]);
  const closed = await scripted([ok({})]);
  await closed.close();
  for (const endpoint of [s.endpoint, closed.endpoint]) {
    const client = createDynamoHttpClient({ endpoint, region: 'us-east-1', credentials });
    const error = await client.send(update()).catch((e) => e);
    const text = `${error} ${error.stack} ${JSON.stringify(error)}`;
    for (const secret of [SECRET, TOKEN, BODY_MARKER]) assert.not.ok(text.includes(secret), `${endpoint}: ${text}`);
    client.destroy();
  }
  await s.close();
});

wire('credentials: one fetch shared by concurrent sends, refreshed shortly before they expire', async () => {
  const s = await scripted([ok({})]);
  let fetches = 0;
  let expiration = new Date(Date.now() + 60 * 60_000);
  const provider = async () => ({ ...credentials, accessKeyId: `KEY${++fetches}`, expiration });
  const client = createDynamoHttpClient({ endpoint: s.endpoint, region: 'us-east-1', credentials: provider });
  await Promise.all([client.send(update()), client.send(update()), client.send(update())]);
  await client.send(update());
  assert.is(fetches, 1);
  expiration = new Date(Date.now() + 60_000); // the next fetch returns credentials about to expire
  // Still an hour left on the first ones: no fetch.
  await client.send(update());
  assert.is(fetches, 1);
  assert.match(String(s.seen.at(-1)!.headers.authorization), /Credential=KEY1\//);
  client.destroy();
  await s.close();
  // A provider whose credentials are within the refresh margin is asked again on the next send.
  const t = await scripted([ok({})]);
  const soon = createDynamoHttpClient({ endpoint: t.endpoint, region: 'us-east-1', credentials: provider });
  await soon.send(update());
  await soon.send(update());
  assert.is(fetches, 3);
  assert.match(String(t.seen.at(-1)!.headers.authorization), /Credential=KEY3\//);
  soon.destroy();
  await t.close();
});

// --------------------------------------------------------------------------------- against dynalite

const shapes = suite('lean client outputs = SDK client outputs (dynalite)');

shapes('UpdateItem, GetItem, BatchGetItem, Query (paged), PutItem, DeleteItem', async () => {
  const server = await startDynalite();
  const sdk = server.client();
  const lean = server.lean();
  await ensureLedgerTable(sdk, 'shapes');
  const TableName = 'shapes';
  const Key = (sk: string) => ({ pk: { S: 'p' }, sk: { S: sk } });
  const strip = ({ $metadata, ...rest }: any) => rest;
  const item = (i: number) => ({ ...Key(`k${i}`), n: { N: String(i) }, l: { L: [{ S: 'x' }, { BOOL: true }] }, m: { M: { z: { NULL: true } } } });
  const both = async (command: () => any) => {
    await sdk.send(new PutItemCommand({ TableName, Item: item(4) })); // the delete below removes it
    const a = strip(await sdk.send(command()));
    await sdk.send(new PutItemCommand({ TableName, Item: item(4) }));
    const b = strip(await lean.send(command()));
    return [a, b];
  };
  for (let i = 0; i < 5; i++) await sdk.send(new PutItemCommand({ TableName, Item: item(i) }));
  const commands: [string, () => any][] = [
    ['update new', () => new UpdateItemCommand({ TableName, Key: Key('k0'), UpdateExpression: 'ADD n :z', ExpressionAttributeValues: { ':z': { N: '0' } }, ReturnValues: 'ALL_NEW' })],
    ['update none', () => new UpdateItemCommand({ TableName, Key: Key('k1'), UpdateExpression: 'ADD n :z', ExpressionAttributeValues: { ':z': { N: '0' } } })],
    ['get', () => new GetItemCommand({ TableName, Key: Key('k2'), ConsistentRead: true })],
    ['get missing', () => new GetItemCommand({ TableName, Key: Key('none') })],
    ['batch get', () => new BatchGetItemCommand({ RequestItems: { [TableName]: { Keys: [Key('k1'), Key('k3'), Key('none')] } } })],
    ['query page', () => new QueryCommand({ TableName, KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': { S: 'p' } }, Limit: 2 })],
    ['put', () => new PutItemCommand({ TableName, Item: { ...Key('k9'), n: { N: '9' } } })],
    ['delete old', () => new DeleteItemCommand({ TableName, Key: Key('k4'), ReturnValues: 'ALL_OLD' })],
  ];
  for (const [name, command] of commands) {
    const [a, b] = await both(command);
    if (name === 'batch get') for (const x of [a, b]) x.Responses[TableName].sort((p: any, q: any) => p.sk.S.localeCompare(q.sk.S));
    assert.equal(b, a, name);
  }
  sdk.destroy();
  lean.destroy();
  await server.close();
});

signing.run();
wire.run();
shapes.run();
