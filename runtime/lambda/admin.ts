// Lambda entry point of the admin function (invoked with lambda:InvokeFunction, no URL).
import { createAdmin, type AdminHandler } from '../core/admin.ts';
import { lambdaLogger, lambdaStores } from './stores.ts';

let admin: AdminHandler | undefined;

export async function handler(event: unknown): Promise<unknown> {
  admin ??= createAdmin({ stage: process.env.OPENAI_WRAPI_STAGE ?? 'dev', ...lambdaStores(process.env), log: lambdaLogger });
  return admin(event);
}
