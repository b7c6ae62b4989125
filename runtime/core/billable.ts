// What OpenAI bills beyond the text tokens of the usage block, checked before a call is forwarded.
// A call is forwarded only if everything it can be billed for is priced: audio at the price's audio
// rates, tokens at the standard tier. Per-call tool fees, other tiers and background runs are
// refused, because their cost is not in the usage block the proxy reads (or not in any answer it
// sees), so they would escape the limits.
import { badRequest } from './errors.ts';
import type { Price } from './pricing.ts';
import { declaredTools, hasMcpTool, isCount, type JsonObject } from './request-facts.ts';
import type { Route } from './routes.ts';

const CODE = 'unpriced_feature';

/** Tiers billed at the standard rates; with `auto` OpenAI uses the project's default tier. */
const STANDARD_TIERS = new Set(['auto', 'default']);

/** Built-in tools that OpenAI bills per call, container or image on top of tokens. */
const FEE_TOOLS = /^(web_search(_preview)?(_\d{4}_\d{2}_\d{2})?|file_search|code_interpreter|image_generation)$/;

/** Models that search the web on every call (`gpt-4o-search-preview`, `gpt-5-search-api`), not `…-research`. */
const SEARCH_MODEL = /(^|[-:])search(-|$)/;

/** Reasoning modes billed as the usage block reports them, at the standard rates (`pro`: a deeper pass, same rates). */
const REASONING_MODES = new Set(['standard', 'pro']);

/** Moderation models, free at OpenAI: what a moderated call may name. */
const MODERATION_MODEL = /^(omni|text)-moderation(-[a-z0-9-]+)?$/;

/** Tools that run in the caller's code (or an MCP server the caller names): billed as tokens only. */
const TOKEN_ONLY_TOOLS = new Set(['function', 'custom', 'mcp', 'local_shell', 'apply_patch']);

/** Which directions of a call carry audio. */
export interface AudioUse {
  input: boolean;
  output: boolean;
}

/**
 * Throws an OpenAI-shaped 400 when the call may be billed for something the proxy cannot price.
 * Returns where the call uses audio, which its reservation prices at the audio rates.
 */
export function assertBillable(route: Route, body: JsonObject, price: Price, tools = declaredTools(route, body)): AudioUse {
  if (route.kind === 'responses' && body.background != null && body.background !== false) {
    throw refuse(
      'Background responses are refused by this proxy: OpenAI bills the run later, when it finishes, ' +
        'and the proxy never sees that usage, so it would escape your limits. Call without "background" ' +
        '(stream the response if it takes long).',
      'background',
    );
  }
  const tier = body.service_tier;
  if (tier != null && !(typeof tier === 'string' && STANDARD_TIERS.has(tier))) {
    throw refuse(
      `service_tier "${String(tier)}" is refused by this proxy: the price data has no exact rates for that ` +
        'tier, so the call could not be metered. Leave service_tier out, or use "auto" or "default".',
      'service_tier',
    );
  }
  if (route.kind !== 'embeddings' && SEARCH_MODEL.test(price.model)) {
    throw refuse(
      `Model "${price.model}" searches the web on every call, and OpenAI bills each search on top of ` +
        'the tokens: this proxy does not meter per-call tool fees and cannot bound them before the ' +
        'call. Use a model without built-in search.',
      'model',
    );
  }
  if (route.kind === 'chat' && body.web_search_options != null) {
    throw refuse(
      '"web_search_options" is refused by this proxy: OpenAI bills each web search on top of the tokens, ' +
        'and per-call tool fees are not metered. Call without it.',
      'web_search_options',
    );
  }
  const ttl = (body.prompt_cache_options as JsonObject | null | undefined)?.ttl;
  if (ttl != null && ttl !== PRICED_CACHE_TTL) {
    throw refuse(
      `prompt_cache_options.ttl "${String(ttl).slice(0, 32)}" is refused by this proxy: the price data has cache-write ` +
        `rates for the ${PRICED_CACHE_TTL} lifetime only, so the call could not be metered. Leave ttl out or use "${PRICED_CACHE_TTL}".`,
      'prompt_cache_options',
    );
  }
  if (route.kind === 'responses' && body.prompt != null) {
    throw refuse(
      'Stored prompts ("prompt") are refused by this proxy: a prompt saved at OpenAI may carry tools that ' +
        'OpenAI bills per call, which the proxy can neither see nor meter. Send the prompt\'s instructions ' +
        'and input in the request instead.',
      'prompt',
    );
  }
  const mode = (body.reasoning as JsonObject | null | undefined)?.mode;
  if (mode != null && !(typeof mode === 'string' && REASONING_MODES.has(mode))) {
    throw refuse(
      `reasoning.mode "${String(mode).slice(0, 32)}" is refused by this proxy: only ${[...REASONING_MODES].join(' and ')} are known to be ` +
        'billed as the usage block reports it, at the standard rates. Leave mode out, or use one of them.',
      'reasoning',
    );
  }
  const moderator = (body.moderation as JsonObject | null | undefined)?.model;
  if (moderator != null && !(typeof moderator === 'string' && MODERATION_MODEL.test(moderator))) {
    throw refuse(
      'A moderated call names a moderation model (omni-moderation-latest, …) through this proxy: another model ' +
        'there would be a second model pass that the usage block does not price.',
      'moderation',
    );
  }
  if (route.kind === 'responses' && (hasEntries(body.context_management) || hasCompactionTrigger(body.input))) {
    throw refuse(
      'Server-side compaction is refused by this proxy: OpenAI runs an extra model pass over the whole ' +
        'context to compact it, and the response\'s usage block does not say what that pass cost, so the ' +
        'call could not be metered. Call without "context_management" and without a "compaction_trigger" item.',
      hasEntries(body.context_management) ? 'context_management' : 'input',
    );
  }
  checkTools(tools);
  checkToolChoice(body.tool_choice, tools);
  const turns = body.max_tool_calls;
  if (route.kind === 'responses' && hasMcpTool(tools) && !(isCount(turns) && turns <= MAX_TOOL_CALLS)) {
    throw refuse(
      `A hosted MCP tool needs "max_tool_calls" (0 to ${MAX_TOOL_CALLS}) through this proxy: OpenAI calls the MCP server and runs the ` +
        "model again after each call, every turn billed with its whole context (the server's answers " +
        'included), so without a bound the cost of the call has none. Set max_tool_calls; the call then ' +
        'holds one input window per turn until it settles at its real usage.',
      'max_tool_calls',
    );
  }
  return checkAudio(route, body, price);
}

/** Hosted tool calls a call may allow: each holds a whole input window, so more is never affordable. */
const MAX_TOOL_CALLS = 128;

/** The only prompt-cache lifetime whose write rate the price data has (`cache_write`). */
const PRICED_CACHE_TTL = '30m';

const hasEntries = (v: unknown): boolean => v != null && !(Array.isArray(v) && v.length === 0);

const hasCompactionTrigger = (input: unknown): boolean =>
  Array.isArray(input) && input.some((item) => (item as JsonObject | null)?.type === 'compaction_trigger');

/** tool_choice kinds that name a tool by name or server label: whatever they name was declared, and vetted. */
const NAMING_CHOICES = new Set(['function', 'custom', 'mcp']);

/**
 * A tool_choice (or an allowed_tools list in it) that names a tool by its type may name only a type the
 * call declares, which checkTools vetted, or a token-only one: forcing an undeclared built-in tool
 * must not be a way around the tool checks.
 */
function checkToolChoice(choice: unknown, declared: unknown[]): void {
  if (choice == null) return;
  if (typeof choice === 'string') {
    if (CHOICE_MODES.has(choice)) return;
    throw refuse(`tool_choice "${choice.slice(0, 64)}" is refused by this proxy: only ${[...CHOICE_MODES].join(', ')} or an object naming a declared tool are known.`, 'tool_choice');
  }
  const c = choice as JsonObject;
  // Both shapes (Responses: `tools`; chat: `allowed_tools.tools`), whichever the route: OpenAI reads one.
  const lists = c.type === 'allowed_tools' ? [c.tools, (c.allowed_tools as JsonObject | null)?.tools] : [[c]];
  const named = lists.flatMap((list) => (Array.isArray(list) ? list : []));
  const declaredTypes = new Set(declared.map((t) => (t as JsonObject | null)?.type));
  for (const entry of named) {
    const type = (entry as JsonObject | null)?.type;
    // A declared type passes, unless the entry brings tools of its own (a namespace), vetted here.
    const nested = entry !== null && typeof entry === 'object' && 'tools' in entry;
    if (typeof type === 'string' && (NAMING_CHOICES.has(type) || (declaredTypes.has(type) && !nested))) continue;
    checkTools([entry], 'tool_choice');
  }
}

/** The string forms of tool_choice, in both APIs. */
const CHOICE_MODES = new Set(['none', 'auto', 'required']);

function checkTools(tools: unknown[], param = 'tools'): void {
  for (const tool of tools) {
    const type = (tool as JsonObject | null)?.type;
    if (typeof type === 'string' && tokenOnly(tool as JsonObject)) continue;
    if (typeof type === 'string' && FEE_TOOLS.test(type)) {
      throw refuse(
        `The built-in tool "${type}" is refused by this proxy: OpenAI bills it per call (or per container ` +
          'or image) on top of the tokens, this proxy does not meter those fees, and how often the model ' +
          'uses it cannot be bounded before the call. Use function tools or an MCP server instead.',
        param,
      );
    }
    throw refuse(
      `The tool type "${String(type).slice(0, 64)}" is refused by this proxy: it is not known to be billed ` +
        'as tokens only, so the call could not be metered. Function, custom and MCP tools are allowed.',
      param,
    );
  }
}

/** Namespaces group function/custom tools; shell and tool search are token-only when run locally. */
function tokenOnly(tool: JsonObject): boolean {
  const type = tool.type as string;
  if (TOKEN_ONLY_TOOLS.has(type)) return true;
  if (type === 'namespace') {
    const inner = tool.tools;
    return Array.isArray(inner) && inner.every((t) => (t as JsonObject | null)?.type === 'function' || (t as JsonObject | null)?.type === 'custom');
  }
  if (type === 'shell') return (tool.environment as JsonObject | null)?.type === 'local';
  if (type === 'tool_search') return tool.execution === 'client';
  return false;
}

function checkAudio(route: Route, body: JsonObject, price: Price): AudioUse {
  const use = audioUse(route, body);
  if (!use.input && !use.output) return use;
  if (route.kind === 'responses') {
    throw refuse(
      'Audio in the Responses API is refused by this proxy: its usage block does not say how many ' +
        'tokens were audio, which OpenAI bills at higher rates, so the call could not be priced exactly. ' +
        'Send audio through /chat/completions.',
      use.input ? 'input' : 'modalities',
    );
  }
  if (use.input && price.audio?.input == null) {
    throw refuse(
      `Model "${price.model}" has no audio input price, so calls that send it audio are refused ` +
        '(audio tokens would be billed at text rates). Use a model with audio prices, e.g. gpt-audio, ' +
        'or ask an admin to set them: openai-wrapi prices set ... --audio-input <usd per 1M>',
      'messages',
    );
  }
  if (use.output && price.audio?.output == null) {
    throw refuse(
      `Model "${price.model}" has no audio output price, so calls that ask it for audio are refused ` +
        '(audio tokens would be billed at text rates). Use a model with audio prices, e.g. gpt-audio, ' +
        'or ask an admin to set them: openai-wrapi prices set ... --audio-output <usd per 1M>',
      Array.isArray(body.modalities) && body.modalities.includes('audio') ? 'modalities' : 'audio',
    );
  }
  return use;
}

/**
 * Whether a call sends audio (`input_audio` parts, or an earlier audio answer referenced by id)
 * or asks for it (`modalities` with "audio", or the `audio` output options).
 */
export function audioUse(route: Route, body: JsonObject): AudioUse {
  if (route.kind !== 'chat' && route.kind !== 'responses') return { input: false, output: false };
  return {
    input: hasAudioInput(route.kind === 'chat' ? body.messages : body.input, 0),
    output: (Array.isArray(body.modalities) && body.modalities.includes('audio')) || body.audio != null,
  };
}

function hasAudioInput(value: unknown, depth: number): boolean {
  if (depth > 8 || !value || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((v) => hasAudioInput(v, depth + 1));
  const part = value as JsonObject;
  if (part.type === 'input_audio') return true;
  // An assistant message replaying an earlier spoken answer: the audio goes back in as input.
  if (part.role === 'assistant' && part.audio != null) return true;
  return hasAudioInput(part.content, depth + 1);
}

const refuse = (message: string, param: string) => badRequest(message, CODE, param);
