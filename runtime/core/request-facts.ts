// What the proxy needs to know about a call before forwarding it, read from the client's JSON body.
import { utf8Length } from './utf8.ts';
import { badRequest } from './errors.ts';
import type { Route } from './routes.ts';

export interface RequestFacts {
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk itself (`stream_options.include_usage`). */
  clientWantsUsage: boolean;
  /** Output cap per choice the client set, if any. */
  maxOutputTokens?: number;
  /**
   * Completions OpenAI generates and bills for the call: `n`, or `best_of` for legacy completions,
   * times the number of prompts a legacy completions call sends.
   */
  choices: number;
  /**
   * How many contexts the call may fill, each up to the model's input window: a legacy completions
   * call's prompts (each gets its own), or a Responses call's turns with a hosted MCP tool (OpenAI
   * calls the tool and runs the model again, up to `max_tool_calls` times, each turn billed with
   * its whole context). 1 otherwise.
   */
  contexts: number;
  /** The tools the call gives the model, wherever it declares them (see declaredTools). */
  tools: unknown[];
  /**
   * Every string the call sends (messages, instructions, tools and their schemas, tool calls and
   * outputs, response formats), keys included: the basis of token bounds and estimates. Never logged.
   */
  inputText: string;
  /** Prompt tokens sent as token ids (arrays of numbers in `input` / `prompt`). */
  tokenIds: number;
  /** Images in the prompt: each is bounded by the model's largest image (reservation.ts). */
  images: number;
  /**
   * Input the proxy cannot measure from the body: files, audio, a stored conversation, prompt or
   * item, images at their original size, a hosted MCP server's tools and answers. Bounded by the
   * model's input cap (per context).
   */
  opaqueInput: boolean;
  /**
   * Reasoning items sent back by id alone (their content stays at OpenAI): each is one earlier
   * response's output, so at most the largest output cap of any model.
   */
  storedReasoning: number;
  /** The ids of those items that can be looked up (the proxy remembers what it settled under them). */
  storedReasoningIds: string[];
  /** Chat: earlier spoken answers sent back by id (`audio: { id }` on an assistant message), loaded from OpenAI's store. */
  storedAudio?: number;
  /** The stored response a Responses call continues: its size is part of the input. */
  previousResponseId?: string;
  /** The caller asked for reasoning explicitly (`reasoning_effort`, `reasoning`). */
  reasoning: boolean;
  /**
   * Chat's predicted output (`prediction`): an upper bound of its tokens (its UTF-8 bytes). The part
   * the answer does not use is billed as completion tokens, on top of what the answer generates.
   */
  predictedOutput?: number;
}

export type JsonObject = Record<string, unknown>;

/** Deeper bodies are refused before any walk over them: recursion that deep would overflow the stack. */
const MAX_DEPTH = 64;

/** Whether a parsed value nests deeper than `max` (iterative: the check itself cannot overflow). */
function depthOver(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) if (child && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * The alphabet of OpenAI's model ids: letters, digits and `. _ - :` (`gpt-4.1-mini`,
 * `ft:gpt-4o-mini-2024-07-18:org:suffix:id`). Anything else is refused before it can reach the
 * ledger, the logs or an admin's terminal, where control characters would be live.
 */
export const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;
/** OpenAI's response ids (`resp_` and up to 200 letters and digits), as GET /responses/{id} takes them. */
export const RESPONSE_ID = /^resp_[A-Za-z0-9]{1,200}$/;
/** A reasoning item's id, as the proxy records it when it settles the response that made it. */
export const REASONING_ID = /^rs_[A-Za-z0-9]{1,200}$/;
/** Reasoning items looked up per call; any beyond count at the largest output cap. */
const MAX_LOOKUPS = 32;
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
  if (depthOver(body, MAX_DEPTH)) {
    throw badRequest(`The JSON body is nested more than ${MAX_DEPTH} levels deep.`, 'invalid_json');
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
  const previous = body.previous_response_id;
  if (route.kind === 'responses' && typeof previous === 'string' && !RESPONSE_ID.test(previous)) {
    // Not echoed, as model ids: it is a key of the ledger's, and what is not an id is refused before it.
    throw badRequest('Invalid previous_response_id: response ids look like resp_ followed by letters and digits.', 'invalid_value', 'previous_response_id');
  }
  const stream = body.stream === true && route.kind !== 'embeddings';
  const options = body.stream_options as JsonObject | undefined;
  const input = walkInput(route, body);
  const n = bounded(body.n, 'n', MAX_N) ?? 1;
  const bestOf = route.kind === 'completions' ? bounded(body.best_of, 'best_of', MAX_BEST_OF) ?? 1 : 1;
  const prompts = route.kind === 'completions' ? promptCount(body.prompt) : 1;
  const tools = declaredTools(route, body);
  const mcpTurns = route.kind === 'responses' && hasMcpTool(tools) ? mcpToolTurns(body.max_tool_calls) : 0;
  return {
    model,
    stream,
    clientWantsUsage: options?.include_usage === true,
    maxOutputTokens: maxOutputOf(route, body),
    choices: route.kind === 'chat' || route.kind === 'completions' ? Math.max(n, bestOf) * prompts : 1,
    contexts: prompts + mcpTurns,
    tools,
    ...input,
    // A hosted MCP server's tool list and answers enter every turn's context, unseen by the proxy.
    ...(mcpTurns > 0 ? { opaqueInput: true } : {}),
    ...(route.kind === 'responses' && typeof body.previous_response_id === 'string'
      ? { previousResponseId: body.previous_response_id }
      : {}),
    reasoning: body.reasoning_effort != null || body.reasoning != null,
    ...(route.kind === 'chat' && body.prediction != null ? { predictedOutput: utf8Length(stringsOf(body.prediction).join('')) } : {}),
  };
}

/** Every string value inside `value` (its keys are not sent as text). */
function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (!value || typeof value !== 'object') return [];
  return Object.values(value).flatMap(stringsOf);
}

/** Keys whose values are not tokens of the prompt (binary payloads are bounded another way). */
const BINARY_KEYS = new Set(['image_url', 'file_data', 'file_id', 'file_url', 'input_audio']);
// `item_reference` loads a stored item by id: billed as input, never seen by the proxy.
const OPAQUE_PART_TYPES = new Set(['input_file', 'file', 'input_audio', 'item_reference']);
const IMAGE_PART_TYPES = new Set(['image_url', 'input_image']);
const BOUNDED_DETAIL = new Set(['low', 'high', 'auto']);

/** One walk over the body: all text it sends, token-id arrays, images and unmeasurable parts. */
function walkInput(
  route: Route, body: JsonObject,
): Pick<RequestFacts, 'inputText' | 'tokenIds' | 'images' | 'opaqueInput' | 'storedReasoning' | 'storedReasoningIds' | 'storedAudio'> {
  const texts: string[] = [];
  let tokenIds = 0;
  let images = 0;
  let storedAudio = 0;
  let storedReasoning = 0;
  const storedReasoningIds: string[] = [];
  // A previous response id that is not a string cannot be looked up: its history counts as unseen.
  const odd = body.previous_response_id != null && typeof body.previous_response_id !== 'string';
  let opaqueInput = route.kind === 'responses' && (odd || body.conversation != null || body.prompt != null);
  const walk = (value: unknown, inPrompt: boolean): void => {
    if (typeof value === 'string') texts.push(value);
    else if (typeof value === 'number') tokenIds += inPrompt ? 1 : 0;
    else if (Array.isArray(value)) for (const v of value) walk(v, inPrompt);
    else if (value && typeof value === 'object') {
      const part = value as JsonObject;
      const audio = part.audio as JsonObject | null | undefined;
      if (route.kind === 'chat' && part.role === 'assistant' && audio && typeof audio === 'object' && audio.id != null) storedAudio++;
      const imageType = typeof part.type === 'string' && IMAGE_PART_TYPES.has(part.type);
      // An earlier generated image sent back (its base64 `result`) may be read as an image, not as text.
      if (part.type === 'image_generation_call') images++;
      if (typeof part.type === 'string') {
        if (imageType) {
          images++;
          // The per-image bound holds for low, high and auto detail; none is published for others
          // (`original` reads the image at its full size). Either place may say it.
          for (const detail of [part.detail, (part.image_url as JsonObject | null | undefined)?.detail]) {
            if (detail != null && !BOUNDED_DETAIL.has(detail as string)) opaqueInput = true;
          }
        }
        if (OPAQUE_PART_TYPES.has(part.type)) opaqueInput = true;
        // A reasoning item given without its content is loaded from OpenAI's store.
        if (part.type === 'reasoning' && typeof part.encrypted_content !== 'string') {
          storedReasoning++;
          if (typeof part.id === 'string' && REASONING_ID.test(part.id) && storedReasoningIds.length < MAX_LOOKUPS) storedReasoningIds.push(part.id);
        }
      }
      for (const [key, v] of Object.entries(part)) {
        if (BINARY_KEYS.has(key)) {
          // An image part's URL is counted by its part; any other URL or id (a file, a computer
          // screenshot, which has no detail to bound it) or inline data is bounded by the cap.
          if (key !== 'image_url' || !imageType) opaqueInput = true;
          continue;
        }
        texts.push(key);
        walk(v, inPrompt);
      }
    }
  };
  for (const [key, value] of Object.entries(body)) {
    if (key === 'model' || key === 'stream' || key === 'stream_options') continue;
    walk(value, (route.kind === 'embeddings' && key === 'input') || (route.kind === 'completions' && key === 'prompt'));
  }
  // An input item with neither a type nor a role is an item reference (its `type` is optional).
  if (route.kind === 'responses' && Array.isArray(body.input)) {
    for (const item of body.input) {
      const o = item as JsonObject | null;
      if (o && typeof o === 'object' && typeof o.type !== 'string' && o.role == null) opaqueInput = true;
    }
  }
  return { inputText: texts.join('\n'), tokenIds, images, opaqueInput, storedReasoning, storedReasoningIds, ...(storedAudio ? { storedAudio } : {}) };
}

/** A legacy completions `prompt` that is a list of prompts (strings or token arrays): each is a call of its own. */
function promptCount(prompt: unknown): number {
  return Array.isArray(prompt) && prompt.some((p) => typeof p !== 'number') ? Math.max(1, prompt.length) : 1;
}

/**
 * The tools a call gives the model: `tools`, and on Responses every `tools` list inside its input
 * (`additional_tools` items, what a client-run tool search hands back, and whatever item type comes
 * next: the model may call them as if declared).
 */
export function declaredTools(route: Route, body: JsonObject): unknown[] {
  const tools = Array.isArray(body.tools) ? [...body.tools] : [];
  if (route.kind !== 'responses') return tools;
  const find = (value: unknown): void => {
    if (Array.isArray(value)) for (const v of value) find(v);
    else if (value && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        if (key === 'tools' && Array.isArray(v)) tools.push(...v);
        find(v);
      }
    }
  };
  find(body.input);
  return tools;
}

/** Whether any tool is a hosted MCP server (`mcp`): OpenAI runs its tool calls in a loop of its own. */
export function hasMcpTool(tools: unknown): boolean {
  return Array.isArray(tools) && tools.some((t) => (t as JsonObject | null)?.type === 'mcp');
}

/**
 * The model turns after the first that hosted MCP tool calls may cause: `max_tool_calls`, which the
 * caller must set (billable.ts refuses the call without it). Infinity when it is not a whole number.
 */
function mcpToolTurns(maxToolCalls: unknown): number {
  return isCount(maxToolCalls) ? maxToolCalls : Infinity;
}

/** A whole number ≥ 0, as counts in a body must be. */
export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/**
 * The output cap the call sets, as its route reads it: Chat takes `max_completion_tokens` or the
 * older `max_tokens` (the larger, should both be sent), legacy completions `max_tokens`, Responses
 * `max_output_tokens`. A field the route does not read caps nothing.
 */
function maxOutputOf(route: Route, body: JsonObject): number | undefined {
  if (route.kind === 'chat') {
    const given = [body.max_completion_tokens, body.max_tokens].map((v) => firstNumber(v)).filter((v) => v !== undefined);
    return given.length ? Math.max(...given) : undefined;
  }
  // Legacy completions stop at 16 tokens unless told otherwise (OpenAI's API reference: max_tokens
  // defaults to 16). An explicit null may mean no cap, as it does on chat: the model's own is held.
  if (route.kind === 'completions') return body.max_tokens === undefined ? LEGACY_DEFAULT_MAX_TOKENS : firstNumber(body.max_tokens);
  if (route.kind === 'responses') return firstNumber(body.max_output_tokens);
  return undefined;
}

const LEGACY_DEFAULT_MAX_TOKENS = 16;

/** OpenAI's own maxima: beyond them it refuses the call, and the worst case would not be finite. */
const MAX_N = 128;
const MAX_BEST_OF = 20;

/** A count the caller set (`n`, `best_of`): undefined if absent or not a whole number ≥ 1; refused above `max`. */
function bounded(value: unknown, param: string, max: number): number | undefined {
  const count = positiveInteger(value);
  if (count !== undefined && count > max) throw badRequest(`${param} must be at most ${max}.`, 'invalid_value', param);
  return count;
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : undefined;
}

function firstNumber(...values: unknown[]): number | undefined {
  for (const v of values) if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  return undefined;
}

/**
 * The body sent to OpenAI: what the client sent, plus what exact metering needs.
 * - Streamed chat and legacy completions ask for the usage chunk even if the client did not, so the
 *   recorded cost is exact. The chunk is stripped again on the way back.
 * - Chat and Responses calls that leave the service tier to OpenAI (no `service_tier`, or `auto`) ask
 *   for `default`: with `auto` OpenAI uses the tier set on its project, and a project switched to
 *   priority would bill the call above the standard rates the proxy prices (other tiers are refused
 *   before this, billable.ts).
 */
export function upstreamBody(route: Route, body: JsonObject, facts: RequestFacts): JsonObject {
  let out = body;
  if (facts.stream && !facts.clientWantsUsage && (route.kind === 'chat' || route.kind === 'completions')) {
    const options = (body.stream_options as JsonObject | undefined) ?? {};
    out = { ...out, stream_options: { ...options, include_usage: true } };
  }
  if ((route.kind === 'chat' || route.kind === 'responses') && (body.service_tier == null || body.service_tier === 'auto')) {
    out = { ...out, service_tier: 'default' };
  }
  return out;
}
