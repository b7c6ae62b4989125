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
  /** Keeps the platform running while the upstream is read to its end (the client may have left). */
  waitUntil: (work: Promise<unknown>) => void;
  /** See MAX_CLIENT_LAG_BYTES. */
  maxLagBytes?: number;
}

/**
 * How far (bytes) a client may fall behind the upstream before it counts as gone. The upstream is
 * read at its own pace, never the client's: OpenAI generates (and bills) the whole answer whether or
 * not the client reads it, so a client that stops reading must not stop the proxy from reaching the
 * usage at the end. Past this lag the client is dropped and the rest is read without sending. A
 * client that reads at all keeps up: OpenAI streams tens of KB a second. The bound is also what a
 * stalled stream can cost in memory (besides the sockets' own buffers).
 */
export const MAX_CLIENT_LAG_BYTES = 1024 * 1024;

/**
 * Passes SSE bytes through as they arrive, reading the upstream as fast as it sends. When the client
 * leaves, or lags more than `maxLagBytes` behind, the rest is read without sending, so the usage at
 * the end is still learned; the upstream call's own deadline bounds that.
 */
export function meteredStream(
  source: ReadableStream<Uint8Array>,
  meter: StreamMeter,
  route: Route,
  { onEnd, keepTranscript, waitUntil, maxLagBytes = MAX_CLIENT_LAG_BYTES }: MeteredStreamOptions,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  let clientLeft = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
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
  const send = (bytes: Uint8Array) => {
    keep(bytes);
    controller.enqueue(bytes);
    // Bytes queued for a client that does not read them: it is treated as gone.
    if ((controller.desiredSize ?? 0) < -maxLagBytes) {
      clientLeft = true;
      controller.error(new Error('the client stopped reading the stream'));
    }
  };
  /** Reads the upstream to its end: sent while the client is there, metered either way. */
  const pump = async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          const rest = meter.flush();
          if (!clientLeft) {
            if (rest) send(rest);
            if (!clientLeft) controller.close();
          }
          return end('complete');
        }
        const out = meter.push(value);
        if (out && !clientLeft) send(out);
      }
    } catch (err) {
      if (!clientLeft) {
        controller.enqueue(streamError(route, err));
        controller.close();
      }
      end('broken');
    }
  };
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        waitUntil(pump());
      },
      cancel() {
        // The pump reads on without sending.
        clientLeft = true;
      },
    },
    { highWaterMark: 0, size: (chunk) => chunk.byteLength },
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
