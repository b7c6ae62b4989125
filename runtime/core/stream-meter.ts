// Meters an SSE stream while passing it through. Events go to the client as soon as their blank
// line arrives; the meter reads usage, how the stream ended and the generated text on the side,
// and strips the usage chunk the proxy asked for on the client's behalf.
import { REASONING_ID } from './request-facts.ts';
import { readUsage } from './usage.ts';
import { utf8Length } from './utf8.ts';
import type { TokenUsage } from './pricing.ts';
import type { RouteKind } from './routes.ts';

export interface StreamOutcome {
  usage?: TokenUsage;
  /** The API's last event arrived (`[DONE]`; `response.completed`, `.failed` or `.incomplete`). */
  complete: boolean;
  /**
   * A whole, good answer: chat/completions ended with `[DONE]` and no error event, Responses with
   * `response.completed` and no error. Only such a stream may be cached and replayed.
   */
  succeeded: boolean;
  /** The Responses API's id of the answer (`resp_…`), once its last event named it. */
  responseId?: string;
  /** The ids of its reasoning items (`rs_…`), from the same event. */
  reasoningIds?: string[];
  /**
   * Everything the model generated, as text: the basis of an estimate when usage never came.
   * Never logged. Beyond OUTPUT_TEXT_MAX_CHARS it holds a stand-in of equal or greater token count.
   */
  readonly outputText: string;
  /** Some event's data could not be read (not JSON): the text seen is not all the stream carried. */
  unreadable: boolean;
}

/** Text kept per stream for an estimate; beyond it only a byte count is kept, so memory stays bounded. */
export const OUTPUT_TEXT_MAX_CHARS = 512 * 1024;

const encoder = new TextEncoder();

/** Responses `*.delta` events carry generated text, except audio, whose base64 is not text. */
const NOT_TEXT_DELTAS = new Set(['response.audio.delta', 'response.output_audio.delta']);

class Outcome implements StreamOutcome {
  usage?: TokenUsage;
  responseId?: string;
  reasoningIds?: string[];
  complete = false;
  succeeded = false;
  /** Sticky: one error event spoils the answer, whatever follows it. */
  errored = false;
  unreadable = false;
  private kept = '';
  private droppedBytes = 0;

  get outputText(): string {
    return this.droppedBytes ? this.kept + standIn(this.droppedBytes) : this.kept;
  }

  add(text: unknown): void {
    if (typeof text !== 'string' || !text) return;
    const room = OUTPUT_TEXT_MAX_CHARS - this.kept.length;
    if (text.length <= room) {
      this.kept += text;
      return;
    }
    if (room > 0) this.kept += text.slice(0, room);
    this.droppedBytes += utf8Length(room > 0 ? text.slice(room) : text);
  }
}

export class StreamMeter {
  readonly outcome = new Outcome();
  private readonly decoder = new TextDecoder();
  private pending = '';

  /** `stripUsage`: the client did not ask for the usage chunk, so it must not see it. */
  constructor(
    private readonly kind: RouteKind,
    private readonly stripUsage: boolean,
  ) {}

  /** Feed upstream bytes; returns the bytes to send on (whole events only). */
  push(chunk: Uint8Array): Uint8Array | undefined {
    this.pending += this.decoder.decode(chunk, { stream: true });
    let out = '';
    for (;;) {
      const end = this.boundary();
      if (!end) break;
      const event = this.pending.slice(0, end.index + end.length);
      this.pending = this.pending.slice(end.index + end.length);
      out += this.onEvent(event);
    }
    return out ? encoder.encode(out) : undefined;
  }

  /** Whatever is left when upstream ends (an unterminated last event is passed on as is). */
  flush(): Uint8Array | undefined {
    const rest = this.pending + this.decoder.decode();
    this.pending = '';
    return rest ? encoder.encode(this.onEvent(rest)) : undefined;
  }

  private boundary(): { index: number; length: number } | undefined {
    const lf = this.pending.indexOf('\n\n');
    const crlf = this.pending.indexOf('\r\n\r\n');
    if (lf < 0 && crlf < 0) return undefined;
    if (crlf >= 0 && (lf < 0 || crlf < lf)) return { index: crlf, length: 4 };
    return { index: lf, length: 2 };
  }

  private onEvent(raw: string): string {
    const { event, data } = fieldsOf(raw);
    if (event === 'error') this.fail();
    if (data === undefined) return raw;
    if (data === '[DONE]') {
      this.outcome.complete = true;
      if (this.kind !== 'responses' && !this.outcome.errored) this.outcome.succeeded = true;
      return raw;
    }
    let json: Record<string, any>;
    try {
      json = JSON.parse(data);
    } catch {
      // E.g. events framed in a way this meter does not split (lone CR line ends): what they carried is unknown.
      this.outcome.unreadable = true;
      return raw;
    }
    if (!json || typeof json !== 'object') return raw;
    // What the official client raises on: any event whose JSON has a truthy top-level `error`.
    if (json.error) this.fail();
    return this.kind === 'responses' ? this.onResponsesEvent(raw, json) : this.onChunk(raw, json);
  }

  private fail(): void {
    this.outcome.errored = true;
    this.outcome.succeeded = false;
  }

  private onChunk(raw: string, json: Record<string, any>): string {
    const choices = Array.isArray(json.choices) ? json.choices : [];
    for (const choice of choices) this.collectChoice(choice);
    if (json.usage) {
      this.outcome.usage = readUsage(this.kind, json.usage);
      if (this.stripUsage && choices.length === 0) return '';
    }
    // With include_usage every chunk carries `"usage":null`; a client that did not ask sees none.
    // Quotes inside JSON strings are escaped, so this can only match the top-level key.
    return this.stripUsage ? raw.replace(',"usage":null', '') : raw;
  }

  /** Every kind of generated output counts: tool calls and refusals are billed like content. */
  private collectChoice(choice: any): void {
    const add = (text: unknown) => this.outcome.add(text);
    add(choice?.text); // legacy completions
    const delta = choice?.delta;
    if (!delta || typeof delta !== 'object') return;
    add(delta.content);
    add(delta.refusal);
    add(delta.function_call?.name);
    add(delta.function_call?.arguments);
    add(delta.audio?.transcript);
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) {
        add(call?.function?.name);
        add(call?.function?.arguments);
        add(call?.custom?.name);
        add(call?.custom?.input);
      }
    }
  }

  private onResponsesEvent(raw: string, json: Record<string, any>): string {
    const type = json.type;
    if (typeof type !== 'string') return raw;
    if (type.endsWith('.delta')) {
      if (!NOT_TEXT_DELTAS.has(type)) this.outcome.add(json.delta);
    } else if (type === 'response.output_item.added') {
      this.outcome.add(json.item?.name); // a function or custom tool call's name
    } else if (type === 'error') {
      this.fail();
    } else if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      // A failed or cut-short answer is still billed: its usage counts all the same.
      const usage = readUsage('responses', json.response?.usage);
      if (usage) this.outcome.usage = usage;
      if (typeof json.response?.id === 'string') this.outcome.responseId = json.response.id;
      this.outcome.reasoningIds = reasoningIdsOf(json.response?.output);
      this.outcome.complete = true;
      if (type === 'response.completed' && !this.outcome.errored) this.outcome.succeeded = true;
      else this.fail();
    }
    return raw;
  }
}

/** The `event:` name and joined `data:` lines of one SSE event. */
function fieldsOf(raw: string): { event?: string; data?: string } {
  let event: string | undefined;
  let data: string | undefined;
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith('data:')) {
      const value = line.slice(line[5] === ' ' ? 6 : 5);
      data = data === undefined ? value : `${data}\n${value}`;
    } else if (line.startsWith('event:')) {
      event = line.slice(line[6] === ' ' ? 7 : 6);
    }
  }
  return { event, data };
}

/** At least the UTF-8 size of `text`: surrogates count 3 bytes each (a pair is really 4). */
/**
 * Text that tokenizes to exactly one token per character ("a1a1…": a letter and a digit never
 * share a token), one character per dropped byte. No token is shorter than a byte, so the stand-in
 * never counts fewer tokens than the text it replaces.
 */
function standIn(bytes: number): string {
  return 'a1'.repeat(bytes >> 1) + (bytes & 1 ? 'a' : '');
}

/** The ids of the reasoning items in a Responses answer's output (what a later call may send back by id). */
export function reasoningIdsOf(output: unknown): string[] {
  if (!Array.isArray(output)) return [];
  return output.filter((item) => item?.type === 'reasoning' && typeof item.id === 'string' && REASONING_ID.test(item.id)).map((item) => item.id as string);
}
