// The Lambda Invoke API, enough of it for @aws-sdk/client-lambda to call the local admin functions:
// `POST /2015-03-31/functions/<name>/invocations`, signed, by admin users only, answered with AWS's
// error shapes and a request id (`x-amzn-requestid`, the SDK's `$metadata.requestId`) that is also
// the id an unexpected admin failure is logged and answered with.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminHandler } from '../core/admin.ts';
import { adminFunctionName } from '../core/contract.ts';
import { notFound } from '../core/errors.ts';
import type { Authenticate } from './authenticate.ts';
import { userArn, type LocalUser } from './credentials.ts';
import { readNodeBody, sendJson } from './node-http.ts';

/** What AWS accepts as a synchronous Invoke's payload. */
const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

/** Why `user` may not invoke a stage's admin function (undefined for admins): one rule for every door. */
export function adminDenial(user: LocalUser, stage: string): string | undefined {
  return user.admin
    ? undefined
    : `User ${userArn(user.name)} is not authorized to perform: lambda:InvokeFunction on ${adminFunctionName(stage)} (not an admin of the local stack)`;
}

/** Answers an Invoke request and returns true, or returns false for any other request. */
export type InvokeApi = (req: IncomingMessage, res: ServerResponse, pathname: string) => Promise<boolean>;

export function createInvokeApi(admins: Record<string, AdminHandler>, authenticate: Authenticate): InvokeApi {
  async function invoke(req: IncomingMessage, res: ServerResponse, functionName: string): Promise<void> {
    const requestId = randomUUID();
    const awsError = (status: number, type: string, message: string) =>
      sendJson(res, status, { Type: 'User', message }, { 'x-amzn-errortype': type, 'x-amzn-requestid': requestId });
    let body: Uint8Array;
    try {
      body = await readNodeBody(req, MAX_PAYLOAD_BYTES);
    } catch {
      return awsError(413, 'RequestTooLargeException', 'Request payload is too large');
    }
    const user = await authenticate(req, body);
    if (typeof user === 'string') return awsError(403, 'InvalidSignatureException', user);
    // A function is named by its name or its ARN (`arn:aws:lambda:<region>:<account>:function:<name>`).
    const stage = Object.keys(admins).find((s) => adminFunctionName(s) === functionName.split(':').pop());
    if (!stage) return awsError(404, 'ResourceNotFoundException', `Function not found: ${functionName}`);
    const denied = adminDenial(user, stage);
    if (denied) return awsError(403, 'AccessDeniedException', denied);
    let payload: unknown;
    try {
      payload = body.length ? JSON.parse(Buffer.from(body).toString('utf8')) : {};
    } catch {
      return awsError(400, 'InvalidRequestContentException', 'Could not parse request body into json');
    }
    const answer = await admins[stage](payload, { requestId });
    sendJson(res, 200, answer, { 'x-amz-executed-version': '$LATEST', 'x-amzn-requestid': requestId });
  }

  return async (req, res, pathname) => {
    const match = INVOKE_PATH.exec(pathname);
    if (!match || req.method !== 'POST') return false;
    const name = safeDecode(match[1]);
    if (name === undefined) {
      const err = notFound('Function not found: its name is not valid URL encoding.');
      sendJson(res, err.status, err.body(), err.headers);
    } else {
      await invoke(req, res, name);
    }
    return true;
  };
}

function safeDecode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}
