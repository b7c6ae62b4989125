// What the proxy needs to know about a call before forwarding it, read from the client's JSON body.
import { badRequest } from './errors.ts';
import type { Route } from './routes.ts';

export interface RequestFacts {
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk itself (`stream_options.include_usage`). */
  clientWantsUsage: boolean;
  /** Output cap the client set, if any. */
  maxOutputTokens?: number;
  /** Text of the prompt, for token estimates. Never logged. */
  promptText: string;
  /** Images and files in the prompt: each is estimated at a flat token count. */
  attachments: number;
}

export type JsonObject = Record<string, unknown>;

/**
 * The alphabet of OpenAI's model ids: letters, digits and `. _ - :` (`gpt-4.1-mini`,
 * `ft:gpt-4o-mini-2024-07-18:org:suffix:id`). Anything else is refused before it can reach the
 * ledger, the logs or an admin's terminal, where control characters would be live.
 */
export const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;
export const MODEL_ID_RULE = 'letters, digits and . _ - :, starting with a letter or digit, at most 256 characters';

export function parseJsonBody(bytes: Uint8Array): JsonObject {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest(
      'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.',
      'invalid_json',
    );
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('The request body must be a JSON object.', 'invalid_json');
  }
  return body as JsonObject;
}

export function requestFacts(route: Route, body: JsonObject): RequestFacts {
  const model = body.model;
  if (typeof model !== 'string' || model.length === 0) {
    throw badRequest("you must provide a model parameter", 'missing_model', 'model');
  }
  // Not echoed: the id is exactly what must not be printed.
  if (!MODEL_ID.test(model)) throw badRequest(`Invalid model id: model ids are ${MODEL_ID_RULE}.`, 'invalid_model', 'model');
  const stream = body.stream === true && route.kind !== 'embeddings';
  const options = body.stream_options as JsonObject | undefined;
  const texts: string[] = [];
  let attachments = 0;
  const collect = (value: unknown): void => {
    if (typeof value === 'string') texts.push(value);
    else if (Array.isArray(value)) value.forEach(collect);
    else if (value && typeof value === 'object') {
      const part = value as JsonObject;
      if (typeof part.text === 'string') texts.push(part.text);
      else if (typeof part.content === 'string' || Array.isArray(part.content)) collect(part.content);
      else if (typeof part.input_text === 'string') texts.push(part.input_text);
      if (part.type === 'image_url' || part.type === 'input_image' || part.type === 'input_file' || part.type === 'file') {
        attachments++;
      }
    }
  };
  if (route.kind === 'chat') collect(body.messages);
  else if (route.kind === 'completions') collect(body.prompt);
  else if (route.kind === 'embeddings') collect(body.input);
  else if (route.kind === 'responses') {
    collect(body.instructions);
    collect(body.input);
  }
  return {
    model,
    stream,
    clientWantsUsage: options?.include_usage === true,
    maxOutputTokens: firstNumber(body.max_completion_tokens, body.max_tokens, body.max_output_tokens),
    promptText: texts.join('\n'),
    attachments,
  };
}

function firstNumber(...values: unknown[]): number | undefined {
  for (const v of values) if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  return undefined;
}

/**
 * For streamed chat and legacy completions ask OpenAI for the usage chunk even if the client did
 * not, so the recorded cost is exact. The chunk is stripped again on the way back.
 */
export function withUsageRequested(route: Route, body: JsonObject, facts: RequestFacts): JsonObject {
  if (!facts.stream || facts.clientWantsUsage || (route.kind !== 'chat' && route.kind !== 'completions')) return body;
  const options = (body.stream_options as JsonObject | undefined) ?? {};
  return { ...body, stream_options: { ...options, include_usage: true } };
}
