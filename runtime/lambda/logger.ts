// The functions' structured logs: one JSON line per event through the Powertools Logger, with the
// invocation's request id once `startInvocation` has run. Callers never pass prompts or keys.
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import type { Logger } from '../core/ports.ts';

const powertools = new PowertoolsLogger({ serviceName: 'openai-wrapi' });

/**
 * An Error among the fields would be printed with its stack (and its message, which may quote a
 * request): only its name is kept. The core passes error names already; this keeps it so.
 */
function safeFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!fields) return {};
  let safe: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) (safe ??= { ...fields })[key] = value.name;
  }
  return safe ?? fields;
}

export const lambdaLogger: Logger = {
  info: (message, fields) => powertools.info(message, safeFields(fields)),
  error: (message, fields) => powertools.error(message, safeFields(fields)),
};

/** What the logger takes from the Lambda context (the runtime passes more). */
type InvocationContext = Parameters<PowertoolsLogger['addContext']>[0];

/** Adds the invocation's request id, function name and cold start to every line that follows. */
export function startInvocation(context: unknown): void {
  if (context && typeof context === 'object' && 'awsRequestId' in context) powertools.addContext(context as InvocationContext);
}
