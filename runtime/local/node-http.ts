// node:http ↔ web Request/Response, with backpressure and client-disconnect handling.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLarge extends Error {}

/** Reads a request body, refusing (without buffering the rest) once it passes `max` bytes. */
export function readNodeBody(req: IncomingMessage, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max) {
      req.resume();
      return reject(new BodyTooLarge());
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Lowercase header map; repeated headers joined with commas, as a function URL does. */
export function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

/**
 * Writes a web Response to node, waiting for `drain` so a slow client slows the producer. If the
 * client goes away (before, while or after the response starts) the body is cancelled, which lets
 * the core read the upstream answer to its end, without sending it, and settle the call from it.
 */
export async function writeResponse(res: Response, out: ServerResponse): Promise<void> {
  // Listen before anything else: a close missed here would leave the body unread and unsettled.
  const socket = out.req?.socket ?? out.socket;
  const reader = res.body?.getReader();
  let gone = false;
  const leave = () => {
    if (gone) return;
    gone = true;
    reader?.cancel().catch(() => undefined);
  };
  const onClose = () => {
    if (!out.writableFinished) leave();
  };
  out.on('close', onClose);
  // The socket too: a pipelined response not yet given its socket never hears that socket close.
  socket?.on('close', onClose);
  // Already gone (the client left while the call waited for the upstream's headers): its 'close' was
  // emitted before anyone listened.
  const left = () => out.destroyed || (out as { closed?: boolean }).closed === true || socket?.destroyed === true;
  try {
    if (left()) return leave();
    const headers: Record<string, string> = {};
    res.headers.forEach((value, name) => (headers[name] = value));
    out.writeHead(res.status, headers);
    if (!reader) return;
    for (;;) {
      const { value, done } = await reader.read();
      if (done || gone) break;
      if (left()) return leave();
      // A failed write (the response was destroyed meanwhile) means the client left too.
      const flushed = out.write(value, (err) => err && leave());
      if (!flushed) {
        await new Promise<void>((resolve) => {
          const go = () => {
            out.off('drain', go);
            out.off('close', go);
            socket?.off('close', go);
            resolve();
          };
          out.on('drain', go);
          out.on('close', go);
          socket?.on('close', go);
          // Closed already (its 'close' came before these listeners): waiting for 'drain' would be forever.
          if (left()) go();
        });
        if (left()) return leave();
      }
    }
  } catch (err) {
    // The body failed (not cancelled by us; e.g. the core dropped a client that stopped reading):
    // cut the response, so the client cannot take what it got as the whole answer.
    if (!gone) {
      gone = true;
      out.destroy(err instanceof Error ? err : new Error('the answer failed'));
    }
  } finally {
    out.off('close', onClose);
    socket?.off('close', onClose);
    if (!gone && !out.destroyed) out.end();
  }
}

export function sendJson(out: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  out.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  out.end(text);
}
