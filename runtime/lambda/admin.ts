// Lambda entry point of the admin function (invoked with lambda:InvokeFunction, no URL).
import { createAdmin, type AdminHandler } from '../core/admin.ts';
import { startInvocation } from './logger.ts';
import { readAdminSettings } from './settings.ts';
import { lambdaLogger, lambdaStores } from './stores.ts';

let admin: AdminHandler | undefined;

function build(): AdminHandler {
  const { stage, stores } = readAdminSettings(process.env);
  return createAdmin({ stage, ...lambdaStores(stores), log: lambdaLogger });
}

/** `context.awsRequestId` names an unexpected failure: the caller's SDK and CloudWatch show the same id. */
export async function handler(event: unknown, context?: { awsRequestId?: string }): Promise<unknown> {
  startInvocation(context);
  admin ??= build();
  return admin(event, { requestId: context?.awsRequestId });
}
