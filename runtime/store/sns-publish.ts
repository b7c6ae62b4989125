// SNS Publish as one signed form POST (the Query protocol), with the project's SigV4 signer: the
// notifier sends a message per alert and needs none of @aws-sdk/client-sns.
// https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
import { amzDateOf, sha256Hex, signRequest } from './sigv4-signer.ts';
import type { CredentialProvider } from './dynamo-http.ts';

export interface SnsPublishOptions {
  region: string;
  /** Default `https://sns.<region>.amazonaws.com`. */
  endpoint?: string;
  credentials: CredentialProvider;
  timeoutMs?: number;
  maxAttempts?: number;
  fetch?: typeof fetch;
}

export interface PublishInput {
  topicArn: string;
  subject?: string;
  message: string;
  messageStructure?: 'json';
}

/** SNS refused or could not be reached; `name` is SNS's error code (`InvalidParameter`, …). */
export class SnsError extends Error {
  constructor(
    name: string,
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = name;
  }
}

const CONTENT_TYPE = 'application/x-www-form-urlencoded; charset=utf-8';
/** SNS's answers that mean "try again later". */
const THROTTLES = new Set(['Throttling', 'ThrottlingException', 'ThrottledException', 'KMSThrottling', 'InternalError', 'InternalFailure']);

/** The form body of a Publish (field names as the API spells them). */
export function publishForm(i: PublishInput): string {
  const form = new URLSearchParams({ Action: 'Publish', Version: '2010-03-31', TopicArn: i.topicArn, Message: i.message });
  if (i.subject !== undefined) form.set('Subject', i.subject);
  if (i.messageStructure) form.set('MessageStructure', i.messageStructure);
  return form.toString();
}

export function createSnsPublisher(o: SnsPublishOptions): (input: PublishInput) => Promise<{ messageId: string }> {
  const url = new URL(o.endpoint ?? `https://sns.${o.region}.amazonaws.com`);
  url.pathname = '/';
  const doFetch = o.fetch ?? fetch;
  const maxAttempts = o.maxAttempts ?? 3;
  const timeoutMs = o.timeoutMs ?? 5_000;

  async function attempt(body: string, payloadHash: string): Promise<{ messageId: string }> {
    const headers = signRequest({
      credentials: await o.credentials(),
      region: o.region,
      service: 'sns',
      amzDate: amzDateOf(new Date()),
      headers: { host: url.host, 'content-type': CONTENT_TYPE },
      payloadHash,
    });
    // fetch sets Host from the URL itself (the same value signed above).
    const { host: _host, ...sent } = headers;
    let response: Response;
    try {
      response = await doFetch(url, { method: 'POST', headers: sent, body, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      throw new SnsError((error as Error).name === 'TimeoutError' ? 'TimeoutError' : 'NetworkError', 'SNS could not be reached', undefined, true);
    }
    const text = await response.text();
    if (response.ok) return { messageId: /<MessageId>([^<]*)<\/MessageId>/.exec(text)?.[1] ?? '' };
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP${response.status}`;
    const message = (/<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `SNS answered HTTP ${response.status}`).slice(0, 300);
    throw new SnsError(code, message, response.status, response.status >= 500 || response.status === 429 || THROTTLES.has(code));
  }

  return async (input) => {
    const body = publishForm(input);
    const payloadHash = sha256Hex(body);
    for (let n = 1; ; n++) {
      try {
        return await attempt(body, payloadHash);
      } catch (error) {
        if (n >= maxAttempts || !(error instanceof SnsError && error.retryable)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (n - 1) * (0.5 + Math.random())));
      }
    }
  };
}
