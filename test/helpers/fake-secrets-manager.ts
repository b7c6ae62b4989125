// Secrets Manager's GetSecretValue over the AWS JSON 1.1 protocol, for the one secret a stack
// created: the bundled proxy reads the OpenAI key only from there, as on AWS.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeSecretsManager {
  endpoint: string;
  calls: { target: string; secretId: string; signed: boolean }[];
  /** A new current version, as a rotation in Secrets Manager makes one. */
  rotate(secret: Record<string, string>, versionId: string): void;
  close(): Promise<void>;
}

export async function startFakeSecretsManager(secretArn: string, initial: Record<string, string>): Promise<FakeSecretsManager> {
  const calls: FakeSecretsManager['calls'] = [];
  let secret = initial;
  let versionId = 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111';
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target']);
      const { SecretId } = JSON.parse(body || '{}');
      calls.push({ target, secretId: SecretId, signed: String(req.headers.authorization).startsWith('AWS4-HMAC-SHA256 ') });
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (target !== 'secretsmanager.GetSecretValue' || SecretId !== secretArn) {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." }));
        return;
      }
      res.end(
        JSON.stringify({
          ARN: secretArn,
          Name: secretArn.split(':').pop(),
          SecretString: JSON.stringify(secret),
          VersionId: versionId,
          VersionStages: ['AWSCURRENT'],
          CreatedDate: 1_764_000_000,
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    rotate(next, id) {
      secret = next;
      versionId = id;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
