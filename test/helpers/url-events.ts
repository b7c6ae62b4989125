// Function-URL events for calling the Lambda handlers directly: the reference event AWS sends for
// an AWS_IAM call (test/fixtures/reference), with a JSON body of the test's and the budget headers.
import { readFileSync } from 'node:fs';
import type { FunctionUrlEvent } from '../../runtime/lambda/function-url.ts';

/** The reference event of an AWS_IAM call by the IAM user alice. */
export const IAM_EVENT: FunctionUrlEvent = JSON.parse(
  readFileSync(new URL('../fixtures/reference/lambda-function-url-event-iam.json', import.meta.url), 'utf8'),
);

/**
 * A deep copy of `base` carrying `body` as JSON (its content-length to match), billed to `project`
 * with the response cache off unless `caching` says otherwise.
 */
export function jsonEvent(base: FunctionUrlEvent, body: unknown, project: string, caching = false): FunctionUrlEvent {
  const e = structuredClone(base);
  const json = JSON.stringify(body);
  e.body = json;
  e.isBase64Encoded = false;
  e.headers!['content-length'] = String(Buffer.byteLength(json));
  e.headers!['openai-proxy-project'] = project;
  if (!caching) e.headers!['openai-proxy-caching'] = '0';
  return e;
}
