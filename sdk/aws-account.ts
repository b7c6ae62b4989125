// What the doctor asks AWS about an account before `pulumi up`: Elastic IPs (EC2's Query API, XML)
// and Lambda's concurrency (its REST API, JSON). Plain SigV4-signed requests, no service client:
// the same signer as the proxy's calls, for service `ec2` or `lambda`. Endpoints follow the AWS
// SDKs' variables (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL), which is also
// how the tests point them at local fakes.
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256, type CredentialsProvider } from './credentials.ts';
import { sendSigned, signRequest } from './sign.ts';

type Env = Record<string, string | undefined>;

/** AWS answered with an error (its code and message), or could not be reached (`code` is the network error's). */
export class AwsCallError extends Error {
  override name = 'AwsCallError';
  constructor(
    readonly service: string,
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }

  /** AWS did not accept the credentials themselves (as opposed to a missing permission). */
  get credentialsRefused(): boolean {
    return /^(AuthFailure|InvalidClientTokenId|UnrecognizedClientException|SignatureDoesNotMatch|IncompleteSignature|ExpiredToken|RequestExpired|InvalidSignatureException|MissingAuthenticationToken)/.test(this.code);
  }

  get unreachable(): boolean {
    return this.status === undefined;
  }
}

export interface AwsAccount {
  region: string;
  ec2Endpoint: string;
  lambdaEndpoint: string;
  /** EC2's `vpc-max-elastic-ips` attribute: the account's Elastic IP quota in the region. */
  elasticIpQuota(): Promise<number>;
  /** The region's Elastic IPs: whether each is associated, and its tags. */
  elasticIps(): Promise<ElasticIp[]>;
  /** Lambda's GetAccountSettings: `AccountLimit.ConcurrentExecutions` and `UnreservedConcurrentExecutions`. */
  lambdaConcurrency(): Promise<{ limit: number; unreserved: number }>;
  /** A function's reserved concurrency (0: none, or no such function). */
  reservedConcurrency(functionName: string): Promise<number>;
}

export interface ElasticIp {
  allocationId?: string;
  associated: boolean;
  tags: Record<string, string>;
}

/** The endpoint of `service` in `region`: the SDKs' variables first, then AWS's own. */
export function awsEndpoint(service: 'ec2' | 'lambda', region: string, env: Env = process.env): string {
  const ignore = /^true$/i.test(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '');
  const configured = ignore ? undefined : env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] || env.AWS_ENDPOINT_URL;
  if (configured) return configured.replace(/\/+$/, '');
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://${service}.${region}.${suffix}`;
}

const EC2_VERSION = '2016-11-15';
const TIMEOUT_MS = 15_000;

export function awsAccount(credentials: CredentialsProvider, region: string, env: Env = process.env): AwsAccount {
  const signers = {
    ec2: new SignatureV4({ credentials, region, service: 'ec2', sha256: NodeSha256 }),
    lambda: new SignatureV4({ credentials, region, service: 'lambda', sha256: NodeSha256 }),
  };
  const ec2Endpoint = awsEndpoint('ec2', region, env);
  const lambdaEndpoint = awsEndpoint('lambda', region, env);

  async function send(service: 'ec2' | 'lambda', method: string, url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string; headers: Headers }> {
    const signer = signers[service];
    const signed = await signRequest(signer, { method, url, headers: new Headers(headers), body });
    let res: Response;
    try {
      res = await sendSigned(signer, (u, init) => fetch(u, init), url, {
        method, headers: signed.headers, body: signed.body as BodyInit | undefined, signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string }; code?: string };
      const code = e.name === 'TimeoutError' ? 'timeout' : e.cause?.code ?? e.code ?? 'network_error';
      throw new AwsCallError(service, code, `could not reach ${new URL(url).host} (${code})`);
    }
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  async function ec2(action: string, params: Record<string, string> = {}): Promise<string> {
    const body = new URLSearchParams({ Action: action, Version: EC2_VERSION, ...params }).toString();
    const res = await send('ec2', 'POST', `${ec2Endpoint}/`, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body);
    if (res.status !== 200) {
      // <Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>
      const code = xmlText(res.text, 'Code') ?? `HTTP ${res.status}`;
      throw new AwsCallError('ec2', code, xmlText(res.text, 'Message') ?? `${action} answered ${res.status}`, res.status);
    }
    return res.text;
  }

  async function lambda(path: string): Promise<Record<string, unknown> | undefined> {
    const res = await send('lambda', 'GET', `${lambdaEndpoint}${path}`, {});
    let json: Record<string, unknown> = {};
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      // an answer that is not JSON: its status says enough
    }
    if (res.status === 200) return json;
    // Lambda names the error in x-amzn-ErrorType (`Name:http://internal…`), its text in message/Message.
    const named = res.headers.get('x-amzn-errortype') ?? (typeof json.__type === 'string' ? json.__type.split('#').at(-1)! : '');
    const code = named.split(':')[0] || `HTTP ${res.status}`;
    if (code === 'ResourceNotFoundException') return undefined;
    throw new AwsCallError('lambda', code, String(json.message ?? json.Message ?? `answered ${res.status}`), res.status);
  }

  return {
    region,
    ec2Endpoint,
    lambdaEndpoint,
    async elasticIpQuota() {
      const xml = await ec2('DescribeAccountAttributes', { 'AttributeName.1': 'vpc-max-elastic-ips' });
      for (const item of xmlChildren(xmlText(xml, 'accountAttributeSet', true) ?? '', 'item')) {
        if (xmlText(item, 'attributeName') !== 'vpc-max-elastic-ips') continue;
        const value = Number(xmlText(item, 'attributeValue'));
        if (Number.isInteger(value)) return value;
      }
      throw new AwsCallError('ec2', 'unexpected_answer', 'DescribeAccountAttributes named no vpc-max-elastic-ips', 200);
    },
    async elasticIps() {
      const xml = await ec2('DescribeAddresses');
      const set = xmlText(xml, 'addressesSet', true) ?? '';
      return xmlChildren(set, 'item').map((item) => {
        const tags: Record<string, string> = {};
        for (const tag of xmlChildren(xmlText(item, 'tagSet', true) ?? '', 'item')) {
          const key = xmlText(tag, 'key');
          if (key !== undefined) tags[key] = xmlText(tag, 'value') ?? '';
        }
        const allocationId = xmlText(item, 'allocationId');
        return { ...(allocationId ? { allocationId } : {}), associated: !!xmlText(item, 'associationId'), tags };
      });
    },
    async lambdaConcurrency() {
      const json = await lambda('/2016-08-19/account-settings/');
      const limit = (json?.AccountLimit ?? {}) as Record<string, unknown>;
      const [total, unreserved] = [limit.ConcurrentExecutions, limit.UnreservedConcurrentExecutions];
      if (typeof total !== 'number' || typeof unreserved !== 'number') {
        throw new AwsCallError('lambda', 'unexpected_answer', 'GetAccountSettings named no AccountLimit.ConcurrentExecutions', 200);
      }
      return { limit: total, unreserved };
    },
    async reservedConcurrency(functionName) {
      const json = await lambda(`/2019-09-30/functions/${encodeURIComponent(functionName)}/concurrency`);
      const n = json?.ReservedConcurrentExecutions;
      return typeof n === 'number' ? n : 0;
    },
  };
}

// ------------------------------------------------------------------ just enough XML for EC2's answers

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|\w+);/g, (m, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : ENTITIES[e] ?? m,
  );
}

/** The content of the first `<name>` element (unescaped, unless `raw`: it holds elements). */
function xmlText(xml: string, name: string, raw = false): string | undefined {
  const m = new RegExp(`<${name}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${name}>)`).exec(xml);
  if (!m) return undefined;
  const content = m[1] ?? '';
  return raw ? content : unescapeXml(content.trim());
}

/** The contents of the `<name>` elements directly in `xml`: an `<item>` whole, with the `<item>`s of its own `tagSet`. */
function xmlChildren(xml: string, name: string): string[] {
  const out: string[] = [];
  const tag = new RegExp(`<(/?)${name}(?:\\s[^>]*)?(/?)>`, 'g');
  let depth = 0;
  let start = -1;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    if (m[2]) {
      if (depth === 0) out.push('');
      continue;
    }
    if (!m[1]) {
      if (depth++ === 0) start = m.index + m[0].length;
    } else if (--depth === 0) {
      out.push(xml.slice(start, m.index));
    }
  }
  return out;
}
