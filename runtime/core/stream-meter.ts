// Meters an SSE stream while passing it through. Events go to the client as soon as their blank
// line arrives; the meter reads usage and output text on the side, and strips the usage chunk
// the proxy asked for on the client's behalf.
import { readUsage } from './usage.ts';
import type { TokenUsage } from './pricing.ts';
import type { RouteKind } from './routes.ts';

export interface StreamOutcome {
  usage?: TokenUsage;
  /** The stream ended the way the API ends a good stream (`[DONE]`, `response.completed`). */
  complete: boolean;
  /** Output text seen so far: the basis of an estimate when usage never came. Never logged. */
  outputText: string;
}

const encoder = new TextEncoder();

export class StreamMeter {
  readonly outcome: StreamOutcome = { complete: false, outputText: '' };
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
    const data = dataOf(raw);
    if (data === undefined) return raw;
    if (data === '[DONE]') {
      this.outcome.complete = true;
      return raw;
    }
    let json: Record<string, any>;
    try {
      json = JSON.parse(data);
    } catch {
      return raw;
    }
    return this.kind === 'responses' ? this.onResponsesEvent(raw, json) : this.onChunk(raw, json);
  }

  private onChunk(raw: string, json: Record<string, any>): string {
    const choices = Array.isArray(json.choices) ? json.choices : [];
    for (const choice of choices) {
      const text = choice?.delta?.content ?? choice?.text;
      if (typeof text === 'string') this.outcome.outputText += text;
    }
    if (json.usage) {
      this.outcome.usage = readUsage(this.kind, json.usage);
      if (this.stripUsage && choices.length === 0) return '';
    }
    // With include_usage every chunk carries `"usage":null`; a client that did not ask sees none.
    // Quotes inside JSON strings are escaped, so this can only match the top-level key.
    return this.stripUsage ? raw.replace(',"usage":null', '') : raw;
  }

  private onResponsesEvent(raw: string, json: Record<string, any>): string {
    const type = json.type;
    if (type === 'response.output_text.delta' && typeof json.delta === 'string') {
      this.outcome.outputText += json.delta;
    } else if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      const usage = readUsage('responses', json.response?.usage);
      if (usage) this.outcome.usage = usage;
      this.outcome.complete = true;
    }
    return raw;
  }
}

/** The joined `data:` lines of one SSE event, or undefined when it has none. */
function dataOf(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.slice(line[5] === ' ' ? 6 : 5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}
