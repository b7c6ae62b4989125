/**
 * A simulated OpenAI HTTP API: the upstream of the tests and benchmarks (there is no internet), and of
 * the local stack's demo mode (`npm start -- --demo`), where it answers in words that say so.
 *
 * Wire shapes follow the real captures in test/fixtures/reference/. Behaviour is driven by `fake:key=value`
 * directives in the text of the last user message / input / prompt, so tests work unchanged through
 * the real `openai` client and through a proxy that forwards bodies verbatim. Directives (ints in ms/tokens):
 *   words=N            answer with N words (default 8; each word is one token, plus a final ".")
 *   reasoning=N        N extra reasoning tokens: counted in completion/output tokens, no text
 *   cached=N           report N cached prompt tokens (capped at the prompt tokens)
 *   cache_write=N      report N prompt tokens written to the prompt cache (`cache_write_tokens`, capped at the
 *                      uncached prompt tokens), as the models with a cache-write price do
 *   error=400|401|403|404|429|quota|500|503   answer with that OpenAI error (before any byte)
 *   fail_times=N       with error=: fail only the first N requests with this exact body, then answer
 *   retry_after_ms=N   retry-after(-ms) sent with 429/503 (default 1000)
 *   slow=MS            wait MS before each stream frame, or before a non-stream body
 *   delay_first=MS     wait MS before the first byte (headers included)
 *   break=K            streams: destroy the socket after K content frames (no usage, no [DONE])
 *   midstream_error=K  streams: after K content frames send the in-stream error (chat: data {"error"} +
 *                      [DONE]; Responses: event error + response.failed) and end
 *   tool_args=BYTES    chat and Responses: answer with one function call instead of text, its arguments a
 *                      JSON object of about BYTES bytes, streamed token by token (the content frames of
 *                      break= and midstream_error=); the function is the request's first tool, else "lookup"
 *   flag=CATEGORY      moderations: flag that input for CATEGORY
 *   audio=N            chat: the request's input_audio parts count N audio prompt tokens, and with
 *                      `modalities` ["text","audio"] the answer is spoken: N audio completion tokens
 *                      plus its transcript's text tokens, reported as `audio_tokens` in the usage details
 *   empty=STATUS       answer STATUS with no body at all (what a broken gateway in front may send)
 * Non-stream JSON is gzipped when the request accepts gzip, like api.openai.com; streams are not.
 * Responses are stored (unless `store: false`) and can be read back with GET /v1/responses/{id}.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { encode, decode } from 'gpt-tokenizer';

export interface FakeOpenAIOptions {
  apiKey?: string;
  port?: number;
  /** Demo mode: answers say they are simulated and, without `fake:words=`, are that whole sentence. */
  demo?: boolean;
}
export interface RecordedRequest { method: string; path: string; search: string; headers: Record<string, string>; body: any }
export interface FakeOpenAI {
  url: string;
  apiKey: string;
  requests: RecordedRequest[];
  inFlight(): number;
  aborted: number;
  close(): Promise<void>;
}

type Obj = Record<string, any>;
type Directives = Record<string, string>;
interface ApiError { message: string; type: string; param: string | null; code: string | null }
interface Ctx {
  req: IncomingMessage; res: ServerResponse; body: Obj; d: Directives;
  start: number; requestId: string; apiKeySent: string; brokeOnPurpose: boolean;
  /** Responses of this server by id, for GET /v1/responses/{id}. */
  stored: Map<string, Obj>;
  /** The words answers are made of (each one o200k token with its leading space). */
  vocab: readonly string[];
}
interface Plan { pieces: string[]; text: string; reasoning: number; finish: 'stop' | 'length' }
interface Counts { prompt: number; cached: number; written: number; completion: number; reasoning: number; audioIn: number; audioOut: number }

// ---------------------------------------------------------------- small helpers
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const nowSec = () => Math.floor(Date.now() / 1000);
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const alnum = (n: number) => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');
const int = (v: string | undefined, dflt: number) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : dflt);
const tokens = (s: string) => encode(s).length;

// OpenAI answers with the dated snapshot id for an alias; a few well-known ones are mapped.
const DATED: Record<string, string> = {
  'gpt-4o-mini': 'gpt-4o-mini-2024-07-18', 'gpt-4o': 'gpt-4o-2024-08-06', 'gpt-4.1': 'gpt-4.1-2025-04-14',
  'gpt-4.1-mini': 'gpt-4.1-mini-2025-04-14', 'gpt-4.1-nano': 'gpt-4.1-nano-2025-04-14',
  'gpt-3.5-turbo': 'gpt-3.5-turbo-0125', 'o3-mini': 'o3-mini-2025-01-31', 'o4-mini': 'o4-mini-2025-04-16',
  'gpt-5': 'gpt-5-2025-08-07', 'gpt-5-mini': 'gpt-5-mini-2025-08-07', 'gpt-5-nano': 'gpt-5-nano-2025-08-07',
  'omni-moderation-latest': 'omni-moderation-2024-09-26',
};
const MODELS = [...new Set([...Object.entries(DATED).flat(), 'gpt-3.5-turbo-instruct',
  'text-embedding-3-small', 'text-embedding-3-large', 'text-embedding-ada-002'])];
const dated = (model: unknown) => DATED[String(model)] ?? String(model);
const fingerprint = (model: string) => 'fp_' + createHash('sha256').update(model).digest('hex').slice(0, 10);
const isReasoningModel = (model: string) => /^(o\d|gpt-5)/.test(model);

// Every word is one o200k token (with its leading space), so `fake:words=N` yields N tokens + "."
const TEST_VOCAB = ('This answer comes from the fake test server and it repeats the same words every time ' +
  'so tests can count them').split(' ');
const DEMO_VOCAB = 'This simulated answer is from demo mode and no request went to the real API so nothing was billed for it'.split(' ');
const answerText = (vocab: readonly string[], words: number) =>
  words === 0 ? '' : Array.from({ length: words }, (_, i) => vocab[i % vocab.length]).join(' ') + '.';

// ---------------------------------------------------------------- prompt text, directives, token counts
interface Msg { role: string; content: unknown; name?: string }

/** Text of a message content: a string, or the text of its parts (text / input_text / output_text). */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (typeof p === 'string' ? p : typeof p?.text === 'string' ? p.text : '')).join('');
}

const lastUserText = (msgs: Msg[]) => textOf([...msgs].reverse().find((m) => m.role === 'user')?.content);

function parseDirectives(text: string): Directives {
  const d: Directives = {};
  for (const m of text.matchAll(/fake:([a-z_]+)=(\S+)/g)) d[m[1]] = m[2];
  return d;
}

/** Chat-format prompt size: each message costs 3 tokens + its role, content (and name); 3 prime the reply. */
function messagesTokens(msgs: Msg[]): number {
  return msgs.reduce((n, m) => n + 3 + tokens(m.role ?? '') + tokens(textOf(m.content)) + (m.name ? 1 : 0), 3);
}

/** Responses input (string or item list, plus instructions) as chat-like messages. */
function responsesMessages(body: Obj): Msg[] {
  const msgs: Msg[] = [];
  if (typeof body.instructions === 'string') msgs.push({ role: 'developer', content: body.instructions });
  if (typeof body.input === 'string') msgs.push({ role: 'user', content: body.input });
  for (const item of Array.isArray(body.input) ? body.input : []) {
    if (item?.role) msgs.push({ role: item.role, content: item.content });
    else if (item?.type === 'function_call_output') msgs.push({ role: 'tool', content: String(item.output ?? '') });
  }
  return msgs;
}

/** Inputs of embeddings/moderations/completions as strings; token arrays become comma lists. */
function inputList(input: unknown): string[] {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input)) return [];
  if (input.every((x) => typeof x === 'number')) return [input.join(',')];
  return input.map((x) => (Array.isArray(x) ? x.join(',') : textOf(typeof x === 'string' ? x : [x])));
}

/** The output: tokenised answer, cut by the token limit (reasoning tokens count against it first). */
function planOutput(ctx: Ctx, limit: number | undefined, prefix = ''): Plan {
  const d = ctx.d;
  const all = encode(prefix + answerText(ctx.vocab, int(d.words, ctx.vocab === DEMO_VOCAB ? DEMO_VOCAB.length : 8)));
  const wanted = int(d.reasoning, 0);
  const reasoning = Math.min(wanted, limit ?? Infinity);
  const visible = all.slice(0, (limit ?? Infinity) - reasoning);
  const pieces = visible.map((t) => decode([t]));
  const truncated = visible.length < all.length || reasoning < wanted;
  return { pieces, text: pieces.join(''), reasoning, finish: truncated ? 'length' : 'stop' };
}

/** A `fake:tool_args=BYTES` answer: one function call whose JSON arguments are about BYTES long. */
function planToolCall(ctx: Ctx): Plan {
  const bytes = int(ctx.d.tool_args, 0);
  let query = '';
  for (let i = 0; query.length < bytes; i++) query += (i ? ' ' : '') + ctx.vocab[i % ctx.vocab.length];
  const text = JSON.stringify({ query });
  const pieces = encode(text).map((t) => decode([t]));
  return { pieces, text, reasoning: 0, finish: 'stop' };
}

/** The function a tool-call answer calls: the request's first tool (chat or Responses shape). */
function toolName(body: Obj): string {
  const tool = Array.isArray(body.tools) ? body.tools[0] : undefined;
  return String(tool?.function?.name ?? tool?.name ?? 'lookup');
}

/** Audio tokens are parts of the prompt and completion totals, as OpenAI reports them. */
function countsFor(d: Directives, prompt: number, plan: Plan, audio = { in: 0, out: 0 }): Counts {
  const cached = Math.min(int(d.cached, 0), prompt + audio.in);
  const written = Math.min(int(d.cache_write, 0), prompt + audio.in - cached);
  return { prompt: prompt + audio.in, cached, written, completion: plan.pieces.length + plan.reasoning + audio.out,
    reasoning: plan.reasoning, audioIn: audio.in, audioOut: audio.out };
}

/** Audio parts sent (`input_audio`, or an earlier spoken answer referenced by id) and a spoken answer asked for. */
function audioOf(body: Obj, d: Directives): { in: number; out: number } {
  const n = int(d.audio, 0);
  const msgs: Obj[] = Array.isArray(body.messages) ? body.messages : [];
  const sent = msgs.some((m) => (m?.role === 'assistant' && m.audio) ||
    (Array.isArray(m?.content) && m.content.some((p: Obj) => p?.type === 'input_audio')));
  return { in: sent ? n : 0, out: isSpoken(body) ? n : 0 };
}

const isSpoken = (body: Obj) => Array.isArray(body.modalities) && body.modalities.includes('audio');

const chatUsage = (c: Counts) => ({
  prompt_tokens: c.prompt, completion_tokens: c.completion, total_tokens: c.prompt + c.completion,
  prompt_tokens_details: { cached_tokens: c.cached, audio_tokens: c.audioIn, ...(c.written ? { cache_write_tokens: c.written } : {}) },
  completion_tokens_details: { reasoning_tokens: c.reasoning, audio_tokens: c.audioOut,
    accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
});
const legacyUsage = (c: Counts) => ({
  prompt_tokens: c.prompt, completion_tokens: c.completion, total_tokens: c.prompt + c.completion });
const responsesUsage = (c: Counts) => ({
  input_tokens: c.prompt, input_tokens_details: { cached_tokens: c.cached, ...(c.written ? { cache_write_tokens: c.written } : {}) },
  output_tokens: c.completion, output_tokens_details: { reasoning_tokens: c.reasoning },
  total_tokens: c.prompt + c.completion,
});

// ---------------------------------------------------------------- errors (bodies from openai-errors.json)
const invalid = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  ({ message, type: 'invalid_request_error', param, code });
const SERVER_ERROR: ApiError = { message: 'The server had an error while processing your request. Sorry about that!',
  type: 'server_error', param: null, code: null };

function maskKey(key: string): string {
  return key.length <= 8 ? '*'.repeat(key.length) : key.slice(0, 3) + '*'.repeat(key.length - 7) + key.slice(-4);
}
function badKeyError(key: string): ApiError {
  if (!key) return invalid("You didn't provide an API key. You need to provide your API key in an Authorization " +
    'header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from ' +
    'https://platform.openai.com/account/api-keys.');
  return invalid(`Incorrect API key provided: ${maskKey(key)}. You can find your API key at ` +
    'https://platform.openai.com/account/api-keys.', null, 'invalid_api_key');
}

const MAX_TOKENS_UNSUPPORTED = invalid("Unsupported parameter: 'max_tokens' is not supported with this model. " +
  "Use 'max_completion_tokens' instead.", 'max_tokens', 'unsupported_parameter');

const RATE_HEADERS = { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-limit-tokens': '200000',
  'x-ratelimit-remaining-requests': '499', 'x-ratelimit-remaining-tokens': '0',
  'x-ratelimit-reset-requests': '120ms', 'x-ratelimit-reset-tokens': '68ms' };

/** The error asked for by `fake:error=...`: [status, body, extra headers]. */
function directedError(ctx: Ctx): [number, ApiError, Record<string, string>] | undefined {
  const model = String(ctx.body.model ?? 'gpt-4o-mini');
  const retryMs = int(ctx.d.retry_after_ms, 1000);
  const retry = { 'retry-after': String(Math.ceil(retryMs / 1000)), 'retry-after-ms': String(retryMs) };
  switch (ctx.d.error) {
    case '400': return [400, MAX_TOKENS_UNSUPPORTED, {}];
    case '401': return [401, badKeyError(ctx.apiKeySent || 'sk-missing'), {}];
    case '403': return [403, { message: 'Country, region, or territory not supported', type: 'request_forbidden',
      param: null, code: 'unsupported_country_region_territory' }, {}];
    case '404': return [404, invalid(`The model \`${model}\` does not exist or you do not have access to it.`,
      null, 'model_not_found'), {}];
    case '429': return [429, { message: `Rate limit reached for ${model} in organization org-FAKE0123456789abcdef ` +
      'on tokens per min (TPM): Limit 200000, Used 199200, Requested 1027. Please try again in 68ms. ' +
      'Visit https://platform.openai.com/account/rate-limits to learn more.', type: 'tokens', param: null,
      code: 'rate_limit_exceeded' }, { ...RATE_HEADERS, ...retry }];
    case 'quota': return [429, { message: 'You exceeded your current quota, please check your plan and billing ' +
      'details. For more information on this error, read the docs: ' +
      'https://platform.openai.com/docs/guides/error-codes/api-errors.', type: 'insufficient_quota', param: null,
      code: 'insufficient_quota' }, {}];
    case '500': return [500, SERVER_ERROR, {}];
    case '503': return [503, { message: 'The server is overloaded or not ready yet.', type: 'server_error',
      param: null, code: null }, retry];
    default: return undefined;
  }
}

/** Parameter checks the real API makes (400 before any output). */
function validate(body: Obj, required: string[]): ApiError | undefined {
  if (typeof body.model !== 'string') return invalid('you must provide a model parameter');
  for (const p of required) {
    if (body[p] === undefined) return invalid(`Missing required parameter: '${p}'.`, p, 'missing_required_parameter');
  }
  if (body.max_tokens != null && isReasoningModel(body.model)) return MAX_TOKENS_UNSUPPORTED;
  for (const [p, min] of [['max_tokens', 1], ['max_completion_tokens', 1], ['max_output_tokens', 16]] as const) {
    const v = body[p];
    if (v != null && (!Number.isInteger(v) || v < min)) return invalid(`Invalid '${p}': integer below minimum value. ` +
      `Expected a value >= ${min}, but got ${v} instead.`, p, 'integer_below_min_value');
  }
  return undefined;
}

// ---------------------------------------------------------------- writing responses
function baseHeaders(ctx: Ctx): Record<string, string | string[]> {
  return {
    'access-control-expose-headers': 'X-Request-ID', 'openai-organization': 'user-fakeorg0000',
    'openai-processing-ms': String(Date.now() - ctx.start), 'openai-project': 'proj_FAKE0123456789abcdef',
    'openai-version': '2020-10-01', 'x-envoy-upstream-service-time': String(Date.now() - ctx.start + 3),
    'x-ratelimit-limit-requests': '30000', 'x-ratelimit-limit-tokens': '150000000',
    'x-ratelimit-remaining-requests': '29999', 'x-ratelimit-remaining-tokens': '149999595',
    'x-ratelimit-reset-requests': '2ms', 'x-ratelimit-reset-tokens': '0s', 'x-request-id': ctx.requestId,
    'strict-transport-security': 'max-age=31536000; includeSubDomains; preload', 'cf-cache-status': 'DYNAMIC',
    'set-cookie': [`__cf_bm=FAKE${hex(8)}-${nowSec()}-1.0.1.1-FAKE; path=/; domain=.api.openai.com; HttpOnly; ` +
      'Secure; SameSite=None'],
    'x-content-type-options': 'nosniff', server: 'cloudflare', 'cf-ray': `${hex(8)}-IAD`,
    'alt-svc': 'h3=":443"; ma=86400',
  };
}

/** JSON body; gzipped when the client accepts it, as api.openai.com (Cloudflare) does. */
async function sendJson(ctx: Ctx, status: number, obj: unknown, extra: Record<string, string> = {}): Promise<void> {
  if (status === 200 && ctx.d.slow) await sleep(int(ctx.d.slow, 0));
  if (ctx.res.destroyed) return;
  let body = Buffer.from(JSON.stringify(obj));
  const headers: Record<string, string | string[]> = { ...baseHeaders(ctx), 'content-type': 'application/json', ...extra };
  if (/\bgzip\b/.test(String(ctx.req.headers['accept-encoding'] ?? ''))) {
    body = gzipSync(body);
    headers['content-encoding'] = 'gzip';
  }
  headers['content-length'] = String(body.length);
  ctx.res.writeHead(status, headers).end(body);
}

const sendError = (ctx: Ctx, status: number, error: ApiError, extra: Record<string, string> = {}) =>
  sendJson(ctx, status, { error }, { 'content-type': 'application/json; charset=utf-8', ...extra });

function startStream(ctx: Ctx): void {
  ctx.res.writeHead(200, { ...baseHeaders(ctx), 'content-type': 'text/event-stream; charset=utf-8' });
  ctx.res.flushHeaders();
}

/** Writes one SSE frame (after `fake:slow`), resolving once flushed; false when the client is gone. */
async function emit(ctx: Ctx, frame: string): Promise<boolean> {
  if (ctx.d.slow) await sleep(int(ctx.d.slow, 0));
  if (ctx.res.destroyed) return false;
  await new Promise<void>((resolve) => ctx.res.write(frame, () => resolve()));
  return !ctx.res.destroyed;
}

/** Emits content frames, honouring `fake:break` and `fake:midstream_error`. False: the stream is over. */
async function emitContent(ctx: Ctx, pieces: string[], frame: (p: string) => string,
  fail: () => string[]): Promise<boolean> {
  const breakAt = int(ctx.d.break, -1), failAt = int(ctx.d.midstream_error, -1);
  for (let i = 0; i <= pieces.length; i++) {
    if (i === breakAt) {
      ctx.brokeOnPurpose = true; // a stream cut by the network: no usage, no [DONE], broken chunked encoding
      ctx.res.socket?.destroy();
      return false;
    }
    if (i === failAt) {
      for (const f of fail()) await emit(ctx, f);
      ctx.res.end();
      return false;
    }
    if (i < pieces.length && !(await emit(ctx, frame(pieces[i])))) return false;
  }
  return true;
}

const data = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const DONE = 'data: [DONE]\n\n';
const obfuscation = () => alnum(1 + (randomBytes(1)[0] % 15));

// ---------------------------------------------------------------- endpoints
async function chatCompletions(ctx: Ctx): Promise<void> {
  const { body } = ctx;
  const err = validate(body, ['messages']);
  if (err) return sendError(ctx, 400, err);
  const model = dated(body.model), fp = fingerprint(model);
  const toolCall = ctx.d.tool_args !== undefined;
  const plan = toolCall ? planToolCall(ctx) : planOutput(ctx, body.max_completion_tokens ?? body.max_tokens ?? undefined);
  const audio = audioOf(body, ctx.d);
  const usage = chatUsage(countsFor(ctx.d, messagesTokens(body.messages), plan, audio));
  const id = 'chatcmpl-' + alnum(29), created = nowSec();
  if (toolCall) return chatToolCall(ctx, plan, usage, id, created);
  // A spoken answer comes as `message.audio` (base64 audio and its transcript) with no text content.
  const spoken = isSpoken(body);
  const audioId = 'audio_' + hex(16), expires = nowSec() + 3600, audioData = Buffer.alloc(32).toString('base64');
  if (!body.stream) {
    const message = spoken
      ? { role: 'assistant', content: null, refusal: null, annotations: [],
        audio: { id: audioId, data: audioData, expires_at: expires, transcript: plan.text } }
      : { role: 'assistant', content: plan.text, refusal: null, annotations: [] };
    return sendJson(ctx, 200, { id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: plan.finish }],
      usage, service_tier: 'default', system_fingerprint: fp });
  }
  const { includeUsage, chunk, delta } = chatChunks(body, id, created, model, fp);
  startStream(ctx);
  if (!(await emit(ctx, chunk(delta({ role: 'assistant', content: '', refusal: null }))))) return;
  // Spoken answers stream their transcript (and audio) under `delta.audio` instead of `content`.
  const ok = await emitContent(ctx, plan.pieces,
    (p) => chunk(delta(spoken ? { audio: { id: audioId, transcript: p } } : { content: p })),
    () => [data({ error: SERVER_ERROR }), DONE]);
  if (!ok) return;
  if (spoken && !(await emit(ctx, chunk(delta({ audio: { id: audioId, data: audioData, expires_at: expires } }))))) return;
  if (!(await emit(ctx, chunk(delta({}, plan.finish))))) return;
  if (includeUsage && !(await emit(ctx, chunk([], usage)))) return;
  if (await emit(ctx, DONE)) ctx.res.end();
}

/** Chat stream frames as OpenAI writes them: usage only when asked for, obfuscation unless turned off. */
function chatChunks(body: Obj, id: string, created: number, model: string, fp: string) {
  const includeUsage = body.stream_options?.include_usage === true;
  const obfuscate = body.stream_options?.include_obfuscation !== false;
  const chunk = (choices: Obj[], u: Obj | null = null) => data({ id, object: 'chat.completion.chunk', created,
    model, service_tier: 'default', system_fingerprint: fp, choices,
    ...(includeUsage ? { usage: u } : {}), ...(obfuscate ? { obfuscation: obfuscation() } : {}) });
  const delta = (d: Obj, finish: string | null = null) => [{ index: 0, delta: d, logprobs: null, finish_reason: finish }];
  return { includeUsage, chunk, delta };
}

/** A chat answer that calls a function: `content` null, the arguments streamed as `tool_calls` deltas. */
async function chatToolCall(ctx: Ctx, plan: Plan, usage: Obj, id: string, created: number): Promise<void> {
  const { body } = ctx;
  const model = dated(body.model), fp = fingerprint(model);
  const call = { id: 'call_' + alnum(24), type: 'function', function: { name: toolName(body), arguments: plan.text } };
  if (!body.stream) {
    return sendJson(ctx, 200, { id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [call], refusal: null, annotations: [] },
        logprobs: null, finish_reason: 'tool_calls' }],
      usage, service_tier: 'default', system_fingerprint: fp });
  }
  const { includeUsage, chunk, delta } = chatChunks(body, id, created, model, fp);
  startStream(ctx);
  const first = { role: 'assistant', content: null,
    tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }], refusal: null };
  if (!(await emit(ctx, chunk(delta(first))))) return;
  const ok = await emitContent(ctx, plan.pieces, (p) => chunk(delta({ tool_calls: [{ index: 0, function: { arguments: p } }] })),
    () => [data({ error: SERVER_ERROR }), DONE]);
  if (!ok || !(await emit(ctx, chunk(delta({}, 'tool_calls'))))) return;
  if (includeUsage && !(await emit(ctx, chunk([], usage)))) return;
  if (await emit(ctx, DONE)) ctx.res.end();
}

async function completions(ctx: Ctx): Promise<void> {
  const { body } = ctx;
  const err = validate(body, ['prompt']);
  if (err) return sendError(ctx, 400, err);
  const model = String(body.model);
  // Legacy completions default to max_tokens 16, and usually start with a blank line.
  const plan = planOutput(ctx, body.max_tokens ?? 16, '\n\n');
  const usage = legacyUsage(countsFor(ctx.d, inputList(body.prompt).reduce((n, p) => n + tokens(p), 0), plan));
  const id = 'cmpl-' + alnum(29), created = nowSec();
  const choice = (text: string, finish: string | null) => ({ text, index: 0, logprobs: null, finish_reason: finish });
  if (!body.stream) {
    return sendJson(ctx, 200, { id, object: 'text_completion', created, model,
      choices: [choice(plan.text, plan.finish)], usage });
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: Obj[], u: Obj | null = null) => data({ id, object: 'text_completion', created,
    choices, model, ...(includeUsage ? { usage: u } : {}) });
  startStream(ctx);
  const ok = await emitContent(ctx, plan.pieces, (p) => chunk([choice(p, null)]),
    () => [data({ error: SERVER_ERROR }), DONE]);
  if (!ok || !(await emit(ctx, chunk([choice('', plan.finish)])))) return;
  if (includeUsage && !(await emit(ctx, chunk([], usage)))) return;
  if (await emit(ctx, DONE)) ctx.res.end();
}

/** Deterministic unit vector from the text (float32 values, so float and base64 forms decode equal). */
function embeddingOf(text: string, dims: number): number[] {
  const raw: number[] = [];
  for (let block = 0; raw.length < dims; block++) {
    const h = createHash('sha256').update(`${block}:${text}`).digest();
    for (let i = 0; i + 4 <= h.length && raw.length < dims; i += 4) raw.push(h.readUInt32LE(i) / 2 ** 32 - 0.5);
  }
  const norm = Math.sqrt(raw.reduce((s, v) => s + v * v, 0));
  return raw.map((v) => Math.fround(v / norm));
}

function toBase64(vec: number[]): string {
  const buf = Buffer.alloc(vec.length * 4);
  vec.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

async function embeddings(ctx: Ctx): Promise<void> {
  const { body } = ctx;
  const err = validate(body, ['input']);
  if (err) return sendError(ctx, 400, err);
  const inputs = inputList(body.input);
  const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : 8;
  const data = inputs.map((text, index) => {
    const vec = embeddingOf(text, dims);
    return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? toBase64(vec) : vec };
  });
  const promptTokens = Array.isArray(body.input) && body.input.every((x: unknown) => typeof x === 'number')
    ? body.input.length : inputs.reduce((n, t) => n + tokens(t), 0);
  return sendJson(ctx, 200, { object: 'list', data, model: body.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } });
}

const MOD_CATEGORIES = ['harassment', 'harassment/threatening', 'hate', 'hate/threatening', 'illicit',
  'illicit/violent', 'self-harm', 'self-harm/intent', 'self-harm/instructions', 'sexual', 'sexual/minors',
  'violence', 'violence/graphic'];

/** Flags the category named by `fake:flag=CATEGORY` in that input; everything else scores near zero. */
async function moderations(ctx: Ctx): Promise<void> {
  const results = inputList(ctx.body.input).map((text) => {
    const flag = parseDirectives(text).flag;
    const pick = <T>(yes: T, no: T) => Object.fromEntries(MOD_CATEGORIES.map((c) => [c, c === flag ? yes : no]));
    return { flagged: MOD_CATEGORIES.includes(flag), categories: pick(true, false),
      category_scores: pick(0.9871, 0.000012), category_applied_input_types: pick(['text'], ['text']) };
  });
  return sendJson(ctx, 200, { id: 'modr-' + alnum(29), model: dated(ctx.body.model ?? 'omni-moderation-latest'),
    results });
}

const modelObject = (id: string) => ({ id, object: 'model', created: 1715367049, owned_by: 'system' });

async function models(ctx: Ctx): Promise<void> {
  const id = decodeURIComponent(new URL(ctx.req.url ?? '/', 'http://x').pathname.slice('/v1/models/'.length));
  if (!id) return sendJson(ctx, 200, { object: 'list', data: MODELS.map(modelObject) });
  if (MODELS.includes(id)) return sendJson(ctx, 200, modelObject(id));
  return sendError(ctx, 404, invalid(`The model '${id}' does not exist`, 'model', 'model_not_found'));
}

interface ResponseDraft { id: string; created: number; body: Obj; output: Obj[]; usage: Obj; status: string }

/** A Responses object in the field order of the capture; `st`/`out`/`u` differ between stream events. */
function responseObject(r: ResponseDraft, st: string, out: Obj[], u: Obj | null, tier: string): Obj {
  const { body } = r;
  return {
    id: r.id, object: 'response', created_at: r.created, status: st, background: false,
    billing: { payer: 'developer' }, completed_at: st === 'completed' ? nowSec() : null, error: null,
    frequency_penalty: 0.0, incomplete_details: st === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: body.max_tool_calls ?? null, model: dated(body.model), output: out,
    parallel_tool_calls: body.parallel_tool_calls ?? true, presence_penalty: 0.0,
    previous_response_id: body.previous_response_id ?? null, prompt_cache_key: body.prompt_cache_key ?? null,
    prompt_cache_retention: null, reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    safety_identifier: body.safety_identifier ?? null, service_tier: tier, store: body.store ?? true,
    temperature: body.temperature ?? 1.0, text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: body.tool_choice ?? 'auto', tools: body.tools ?? [], top_logprobs: 0, top_p: body.top_p ?? 1.0,
    truncation: body.truncation ?? 'disabled', usage: u, user: body.user ?? null, metadata: body.metadata ?? {},
  };
}

const outputText = (text: string) => ({ type: 'output_text', annotations: [], logprobs: [], text });

async function responses(ctx: Ctx): Promise<void> {
  const { body } = ctx;
  const err = validate(body, ['input']);
  if (err) return sendError(ctx, 400, err);
  const toolCall = ctx.d.tool_args !== undefined;
  const plan = toolCall ? planToolCall(ctx) : planOutput(ctx, body.max_output_tokens ?? undefined);
  const status = plan.finish === 'length' ? 'incomplete' : 'completed';
  // Reasoning models put a reasoning item before the message; a budget spent on reasoning leaves no message.
  const output: Obj[] = plan.reasoning > 0 ? [{ id: 'rs_' + hex(24), type: 'reasoning', summary: [] }] : [];
  if (toolCall) {
    output.push({ id: 'fc_' + hex(24), type: 'function_call', status: 'completed', arguments: plan.text,
      call_id: 'call_' + alnum(24), name: toolName(body) });
  } else if (plan.pieces.length > 0 || output.length === 0) {
    output.push({ id: 'msg_' + hex(24), type: 'message', status, content: [outputText(plan.text)], role: 'assistant' });
  }
  const draft: ResponseDraft = { id: 'resp_' + hex(24), created: nowSec(), body, output, status,
    usage: responsesUsage(countsFor(ctx.d, messagesTokens(responsesMessages(body)), plan)) };
  const final = responseObject(draft, status, output, draft.usage, 'default');
  if (body.store !== false) ctx.stored.set(draft.id, final);
  if (!body.stream) return sendJson(ctx, 200, final);
  return streamResponse(ctx, draft, plan);
}

/** GET /v1/responses/{id}: a stored response as it was completed. */
async function retrieveResponse(ctx: Ctx): Promise<void> {
  const id = decodeURIComponent(new URL(ctx.req.url ?? '/', 'http://x').pathname.slice('/v1/responses/'.length));
  const found = ctx.stored.get(id);
  if (found) return sendJson(ctx, 200, found);
  // Worded like the captured `previous_response_not_found` error; the exact GET body is unconfirmed.
  return sendError(ctx, 404, invalid(`Response with id '${id}' not found.`));
}

/** Responses SSE: `event:` + `data:` frames with gapless sequence numbers and no [DONE]. */
async function streamResponse(ctx: Ctx, r: ResponseDraft, plan: Plan): Promise<void> {
  let seq = 0;
  const ev = (type: string, fields: Obj) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`;
  const emitAll = async (frames: (() => string)[]) => {
    for (const f of frames) if (!(await emit(ctx, f()))) return false;
    return true;
  };
  const inProgress = () => ({ response: responseObject(r, 'in_progress', [], null, 'auto') });
  startStream(ctx);
  if (!(await emitAll([() => ev('response.created', inProgress()), () => ev('response.in_progress', inProgress())]))) return;
  for (const [index, item] of r.output.entries()) {
    const added = item.type === 'message' ? { ...item, status: 'in_progress', content: [] }
      : item.type === 'function_call' ? { ...item, status: 'in_progress', arguments: '' } : item;
    if (!(await emitAll([() => ev('response.output_item.added', { output_index: index, item: added })]))) return;
    if (item.type === 'message' && !(await streamMessageText(ctx, ev, r, plan, index))) return;
    if (item.type === 'function_call' && !(await streamFunctionArguments(ctx, ev, r, plan, index))) return;
    if (!(await emitAll([() => ev('response.output_item.done', { output_index: index, item })]))) return;
  }
  const final = ev(`response.${r.status}`, { response: responseObject(r, r.status, r.output, r.usage, 'default') });
  if (await emit(ctx, final)) ctx.res.end();
}

async function streamMessageText(ctx: Ctx, ev: (type: string, fields: Obj) => string, r: ResponseDraft,
  plan: Plan, outputIndex: number): Promise<boolean> {
  const at = { item_id: r.output[outputIndex].id, output_index: outputIndex, content_index: 0 };
  const obfuscate = r.body.stream_options?.include_obfuscation !== false;
  if (!(await emit(ctx, ev('response.content_part.added', { ...at, part: outputText('') })))) return false;
  const ok = await emitContent(ctx, plan.pieces,
    (p) => ev('response.output_text.delta', { ...at, delta: p, logprobs: [],
      ...(obfuscate ? { obfuscation: obfuscation() } : {}) }),
    () => [ev('error', { code: 'server_error', message: SERVER_ERROR.message, param: null }),
      ev('response.failed', { response: { ...responseObject(r, 'failed', [], null, 'default'),
        error: { code: 'server_error', message: SERVER_ERROR.message } } })]);
  return ok && (await emit(ctx, ev('response.output_text.done', { ...at, text: plan.text, logprobs: [] })))
    && emit(ctx, ev('response.content_part.done', { ...at, part: outputText(plan.text) }));
}

async function streamFunctionArguments(ctx: Ctx, ev: (type: string, fields: Obj) => string, r: ResponseDraft,
  plan: Plan, outputIndex: number): Promise<boolean> {
  const at = { item_id: r.output[outputIndex].id, output_index: outputIndex };
  const obfuscate = r.body.stream_options?.include_obfuscation !== false;
  const ok = await emitContent(ctx, plan.pieces,
    (p) => ev('response.function_call_arguments.delta', { ...at, delta: p,
      ...(obfuscate ? { obfuscation: obfuscation() } : {}) }),
    () => [ev('error', { code: 'server_error', message: SERVER_ERROR.message, param: null }),
      ev('response.failed', { response: { ...responseObject(r, 'failed', [], null, 'default'),
        error: { code: 'server_error', message: SERVER_ERROR.message } } })]);
  return ok && emit(ctx, ev('response.function_call_arguments.done', { ...at, arguments: plan.text }));
}

// ---------------------------------------------------------------- routing and server
type Handler = (ctx: Ctx) => Promise<void>;
/** Handlers and where their directives come from (the last user text of the request). */
const ROUTES: Record<string, [Handler, (body: Obj) => string]> = {
  'POST /v1/chat/completions': [chatCompletions, (b) => lastUserText(Array.isArray(b.messages) ? b.messages : [])],
  'POST /v1/completions': [completions, (b) => inputList(b.prompt).at(-1) ?? ''],
  'POST /v1/embeddings': [embeddings, (b) => inputList(b.input).at(-1) ?? ''],
  'POST /v1/responses': [responses, (b) => lastUserText(responsesMessages(b))],
  'POST /v1/moderations': [moderations, () => ''],
  'GET /v1/models': [models, () => ''],
  'GET /v1/responses': [retrieveResponse, () => ''],
};

function route(method: string, path: string): [Handler, (body: Obj) => string] | undefined {
  if (method === 'GET' && path.startsWith('/v1/models/')) return ROUTES['GET /v1/models'];
  if (method === 'GET' && /^\/v1\/responses\/[^/]+$/.test(path)) return ROUTES['GET /v1/responses'];
  return ROUTES[`${method} ${path}`];
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject).on('close', () => { if (!req.complete) reject(new Error('client went away')); });
  });
}

const flatHeaders = (h: IncomingMessage['headers']) =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const apiKey = opts.apiKey ?? 'sk-test-fake';
  const requests: RecordedRequest[] = [];
  const seenBodies = new Map<string, number>(); // for fake:fail_times
  const stored = new Map<string, Obj>();
  let inFlight = 0;

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: Ctx): Promise<void> {
    const raw = await readBody(req);
    const method = req.method ?? 'GET', url = new URL(req.url ?? '/', 'http://x'), path = url.pathname;
    let body: any, badJson = false;
    try { body = raw ? JSON.parse(raw) : undefined; } catch { badJson = true; }
    requests.push({ method, path, search: url.search, headers: flatHeaders(req.headers), body });
    ctx.apiKeySent = /^Bearer\s+(.*)$/i.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
    if (ctx.apiKeySent !== fake.apiKey) return sendError(ctx, 401, badKeyError(ctx.apiKeySent)); // tests may rotate it
    if (badJson) return sendError(ctx, 400, invalid('We could not parse the JSON body of your request. (HINT: This ' +
      "likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what " +
      'was sent was not valid JSON.)'));
    const found = route(method, path);
    if (!found) return sendError(ctx, 404, invalid(`Invalid URL (${method} ${path})`));
    ctx.body = body && typeof body === 'object' ? body : {};
    ctx.d = parseDirectives(found[1](ctx.body));
    if (ctx.d.delay_first) await sleep(int(ctx.d.delay_first, 0));
    const seen = (seenBodies.get(method + path + raw) ?? 0) + 1;
    seenBodies.set(method + path + raw, seen);
    if (ctx.d.empty) {
      ctx.res.writeHead(int(ctx.d.empty, 502), baseHeaders(ctx));
      return void ctx.res.end();
    }
    const failing = directedError(ctx);
    if (failing && seen <= int(ctx.d.fail_times, Infinity)) return sendError(ctx, ...failing);
    return found[0](ctx);
  }

  const server = http.createServer((req, res) => {
    const ctx: Ctx = { req, res, body: {}, d: {}, start: Date.now(), requestId: 'req_' + hex(16),
      apiKeySent: '', brokeOnPurpose: false, stored, vocab: opts.demo ? DEMO_VOCAB : TEST_VOCAB };
    inFlight++;
    res.on('close', () => {
      inFlight--;
      if (!res.writableFinished && !ctx.brokeOnPurpose) fake.aborted++;
    });
    handle(req, res, ctx).catch(() => {
      if (res.headersSent) res.destroy();
      else sendError(ctx, 500, SERVER_ERROR).catch(() => res.destroy());
    });
  });
  server.keepAliveTimeout = 30_000; // longer than typical client pools, so reused sockets are not cut under them

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject).listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as import('node:net').AddressInfo;
  const fake: FakeOpenAI = {
    url: `http://127.0.0.1:${port}/v1`, apiKey, requests, aborted: 0,
    inFlight: () => inFlight,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
  return fake;
}
