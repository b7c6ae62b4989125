// The two AWS account APIs `openai-wrapi doctor` reads, on one local port: EC2's Query API
// (DescribeAccountAttributes, DescribeAddresses; XML in the 2016-11-15 namespace) and Lambda's REST
// API (GetAccountSettings, GetFunctionConcurrency; JSON), with AWS's response and error shapes.
// Every request must carry a valid SigV4 signature for the right service (ec2 or lambda) and region,
// checked by the local stack's own verifier; anything else is refused the way AWS refuses it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createVerifier } from '../../runtime/local/sigv4.ts';

export interface FakeAwsAccount {
  /** vpc-max-elastic-ips. */
  eipQuota: number;
  addresses: { allocationId: string; associated: boolean; tags?: Record<string, string> }[];
  /** AccountLimit.ConcurrentExecutions and UnreservedConcurrentExecutions. */
  concurrency: number;
  unreserved: number;
  /** Functions that exist, with their reserved concurrency (undefined: none). */
  functions: Record<string, number | undefined>;
}

export interface FakeAwsRequest {
  service: 'ec2' | 'lambda';
  action: string;
  /** The signature checked out for this service and region; else why not. */
  verified: true | string;
}

export interface FakeAws {
  endpoint: string;
  account: FakeAwsAccount;
  requests: FakeAwsRequest[];
  close(): Promise<void>;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const REQUEST_ID = '7a62c49f-347e-4fc4-9331-6e8eEXAMPLE';

export async function startFakeAws(opts: { region: string; accessKeyId: string; secretAccessKey: string; account: FakeAwsAccount }): Promise<FakeAws> {
  const requests: FakeAwsRequest[] = [];
  const user = { name: 'deployer', accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, admin: false };
  const lookup = (key: string) => (key === user.accessKeyId ? user : undefined);
  const verifiers = {
    ec2: createVerifier({ lookup, region: opts.region, service: 'ec2' }),
    lambda: createVerifier({ lookup, region: opts.region, service: 'lambda' }),
  };
  const fake: FakeAws = { endpoint: '', account: opts.account, requests, close: async () => undefined };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const path = q < 0 ? raw : raw.slice(0, q);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
      const service = req.method === 'POST' && path === '/' ? 'ec2' : 'lambda';
      const verdict = await verifiers[service]({ method: req.method ?? 'GET', path, query: q < 0 ? '' : raw.slice(q + 1), headers, body });
      if (service === 'ec2') {
        const params = new URLSearchParams(body.toString('utf8'));
        const action = params.get('Action') ?? '';
        requests.push({ service, action, verified: verdict.ok ? true : verdict.message });
        if (!verdict.ok) return ec2Error(res, 401, 'AuthFailure', `AWS was not able to validate the provided access credentials (${verdict.message})`);
        if (params.get('Version') !== '2016-11-15') return ec2Error(res, 400, 'InvalidParameterValue', 'Version must be 2016-11-15 here');
        if (action === 'DescribeAccountAttributes') {
          if (params.get('AttributeName.1') !== 'vpc-max-elastic-ips') return ec2Error(res, 400, 'InvalidParameterValue', 'this fake knows vpc-max-elastic-ips only');
          return xml(res, 'DescribeAccountAttributesResponse',
            '<accountAttributeSet><item><attributeName>vpc-max-elastic-ips</attributeName>' +
            `<attributeValueSet><item><attributeValue>${fake.account.eipQuota}</attributeValue></item></attributeValueSet></item></accountAttributeSet>`);
        }
        if (action === 'DescribeAddresses') {
          const items = fake.account.addresses.map((a, i) =>
            '<item>' +
            `<publicIp>203.0.113.${10 + i}</publicIp><allocationId>${a.allocationId}</allocationId><domain>vpc</domain>` +
            (a.associated ? `<associationId>eipassoc-${a.allocationId.slice(9)}</associationId><networkInterfaceId>eni-0a1b2c3d${i}</networkInterfaceId>` +
              `<networkInterfaceOwnerId>123456789012</networkInterfaceOwnerId><privateIpAddress>10.0.${i}.9</privateIpAddress>` : '') +
            (a.tags ? `<tagSet>${Object.entries(a.tags).map(([k, v]) => `<item><key>${k}</key><value>${v}</value></item>`).join('')}</tagSet>` : '') +
            `<publicIpv4Pool>amazon</publicIpv4Pool><networkBorderGroup>${opts.region}</networkBorderGroup></item>`,
          ).join('');
          return xml(res, 'DescribeAddressesResponse', `<addressesSet>${items}</addressesSet>`);
        }
        return ec2Error(res, 400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
      }
      const concurrency = /^\/2019-09-30\/functions\/([^/]+)\/concurrency$/.exec(path);
      const action = path === '/2016-08-19/account-settings/' ? 'GetAccountSettings' : concurrency ? 'GetFunctionConcurrency' : path;
      requests.push({ service, action, verified: verdict.ok ? true : verdict.message });
      if (!verdict.ok) return lambdaError(res, 403, 'InvalidSignatureException', verdict.message);
      if (req.method === 'GET' && action === 'GetAccountSettings') {
        return json(res, 200, {
          AccountLimit: {
            TotalCodeSize: 80530636800, CodeSizeUnzipped: 262144000, CodeSizeZipped: 52428800,
            ConcurrentExecutions: fake.account.concurrency, UnreservedConcurrentExecutions: fake.account.unreserved,
          },
          AccountUsage: { TotalCodeSize: 0, FunctionCount: Object.keys(fake.account.functions).length },
        });
      }
      if (req.method === 'GET' && concurrency) {
        const name = decodeURIComponent(concurrency[1]);
        if (!Object.hasOwn(fake.account.functions, name)) {
          return lambdaError(res, 404, 'ResourceNotFoundException', `Function not found: arn:aws:lambda:${opts.region}:123456789012:function:${name}`);
        }
        const reserved = fake.account.functions[name];
        return json(res, 200, reserved === undefined ? {} : { ReservedConcurrentExecutions: reserved });
      }
      return lambdaError(res, 404, 'UnknownOperationException', 'Unknown operation');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise((resolve) => server.close(() => resolve()));
  return fake;
}

function xml(res: http.ServerResponse, root: string, inner: string): void {
  res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">\n    <requestId>${REQUEST_ID}</requestId>\n    ${inner}\n</${root}>`);
}

function ec2Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Message></Error></Errors><RequestID>${REQUEST_ID}</RequestID></Response>`);
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-requestid': REQUEST_ID, ...headers });
  res.end(JSON.stringify(body));
}

function lambdaError(res: http.ServerResponse, status: number, type: string, message: string): void {
  json(res, status, { Type: 'User', message }, { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazonaws.awslambda/` });
}
