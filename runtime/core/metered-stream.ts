// The body of a streamed answer: upstream SSE bytes pass through the meter to the client as they
// arrive, and the call is settled exactly once however the stream ends.
import type { Route } from './routes.ts';
import type { StreamMeter } from './stream-meter.ts';

/** Upper bound on a stream transcript kept for the cache; longer streams are not cached. */
const MAX_TRANSCRIPT_BYTES = 4 * 1024 * 1024;

/** `complete`: the upstream finished; `broken`: it failed or the deadline cut it. */
export type StreamEnd = 'complete' | 'broken';

export interface MeteredStreamOptions {
  /** Called exactly once, when the upstream stream is over. No transcript once the client has left. */
  onEnd: (end: StreamEnd, transcript: Uint8Array | undefined) => void;
  keepTranscript: boolean;
  /** Keeps the platform running while a stream the client left is read to its end. */
  waitUntil: (work: Promise<unknown>) => void;
}

/**
 * Passes SSE bytes through as they arrive (pull-driven, so a slow client slows the upstream read
 * instead of filling memory). When the client leaves, the rest is read without sending, so the
 * usage at the end is still learned; the upstream call's own deadline bounds that.
 */
export function meteredStream(
  source: ReadableStream<Uint8Array>,
  meter: StreamMeter,
  route: Route,
  { onEnd, keepTranscript, waitUntil }: MeteredStreamOptions,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  let clientLeft = false;
  const keep = (bytes: Uint8Array) => {
    if (!keepTranscript || size > MAX_TRANSCRIPT_BYTES) return;
    parts.push(bytes);
    size += bytes.byteLength;
  };
  const end = (how: StreamEnd) => {
    if (ended) return;
    ended = true;
    const whole = keepTranscript && !clientLeft && size <= MAX_TRANSCRIPT_BYTES;
    onEnd(how, whole ? concat(parts, size) : undefined);
  };
  /** Reads what is left after the client went away: metered, not sent. */
  const drain = async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          meter.flush();
          return end('complete');
        }
        meter.push(value);
      }
    } catch {
      end('broken');
    }
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            // The client left while this read was pending: meter the chunk, the drain reads on.
            if (clientLeft) return void (done || meter.push(value));
            if (done) {
              const rest = meter.flush();
              if (rest) {
                keep(rest);
                controller.enqueue(rest);
              }
              controller.close();
              end('complete');
              return;
            }
            const out = meter.push(value);
            if (out) {
              keep(out);
              controller.enqueue(out);
              return;
            }
          }
        } catch (err) {
          if (clientLeft) return; // the drain meets the same failure and ends the stream
          controller.enqueue(streamError(route, err));
          controller.close();
          end('broken');
        }
      },
      cancel() {
        if (ended) return;
        clientLeft = true;
        waitUntil(drain());
      },
    },
    { highWaterMark: 0 },
  );
}

const encoder = new TextEncoder();

/** How a stream that broke off upstream ends for the client: an error event its parser raises. */
function streamError(route: Route, err: unknown): Uint8Array {
  const timedOut = err instanceof Error && err.name === 'TimeoutError';
  const message = timedOut
    ? 'The upstream OpenAI API did not finish the stream in time.'
    : 'The upstream OpenAI API stream was interrupted.';
  const code = timedOut ? 'upstream_timeout' : 'upstream_stream_interrupted';
  if (route.kind === 'responses') {
    return encoder.encode(`event: error\ndata: ${JSON.stringify({ type: 'error', code, message, param: null })}\n\n`);
  }
  return encoder.encode(`data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code } })}\n\n`);
}

/** Joins byte chunks whose total length is known. */
export function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}
