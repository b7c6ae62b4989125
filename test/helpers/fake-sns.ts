// SNS's Query API on one local port, Publish only, with SNS's XML answers: each request's SigV4
// signature (service `sns`) is checked by the local stack's own verifier, an independent
// implementation from the signer under test, and a request that fails it is refused as SNS refuses it.
// https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createVerifier } from '../../runtime/local/sigv4.ts';

export interface Publish {
  topicArn: string | null;
  subject: string | null;
  message: string | null;
  messageStructure: string | null;
  /** The whole form as sent. */
  body: string;
  headers: http.IncomingHttpHeaders;
  /** True when the signature checked out for this key, region and service; else why not. */
  verified: true | string;
  messageId?: string;
}

export interface FakeSns {
  url: string;
  /** Every request, in order of arrival, whether answered or refused. */
  publishes: Publish[];
  /** What the next requests are answered with: 200, or an error status (5xx: SNS's InternalError). */
  status: number;
  close(): Promise<void>;
}

export async function startFakeSns(opts: { region: string; accessKeyId: string; secretAccessKey: string; topics: string[] }): Promise<FakeSns> {
  const user = { name: 'role', accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, admin: false };
  const verify = createVerifier({ lookup: (key) => (key === user.accessKeyId ? user : undefined), region: opts.region, service: 'sns' });
  const publishes: Publish[] = [];
  const fake: FakeSns = { url: '', publishes, status: 200, close: async () => undefined };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const verdict = await verify({ method: req.method ?? 'POST', path: q < 0 ? raw : raw.slice(0, q), query: q < 0 ? '' : raw.slice(q + 1), headers, body });
      const form = new URLSearchParams(body.toString('utf8'));
      const publish: Publish = {
        topicArn: form.get('TopicArn'),
        subject: form.get('Subject'),
        message: form.get('Message'),
        messageStructure: form.get('MessageStructure'),
        body: body.toString('utf8'),
        headers: req.headers,
        verified: verdict.ok ? true : verdict.message,
      };
      publishes.push(publish);
      if (!verdict.ok) return error(res, 403, 'Sender', 'SignatureDoesNotMatch', verdict.message);
      if (form.get('Action') !== 'Publish' || form.get('Version') !== '2010-03-31') return error(res, 400, 'Sender', 'InvalidAction', 'Publish, version 2010-03-31, only');
      if (!publish.topicArn || !opts.topics.includes(publish.topicArn)) return error(res, 404, 'Sender', 'NotFound', 'Topic does not exist');
      if (fake.status !== 200) return error(res, fake.status, 'Receiver', 'InternalError', 'try again');
      publish.messageId = randomUUID();
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${publish.messageId}</MessageId></PublishResult>` +
          `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise((resolve) => server.close(() => resolve()));
  return fake;
}

function error(res: http.ServerResponse, status: number, type: string, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'text/xml' });
  res.end(`<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);
}
