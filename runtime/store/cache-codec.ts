// One cached response <-> one Buffer, for caches that store bytes (memcached).
//
// Frame:   u8 version | u8 encoding (0 raw, 1 brotli) | u32 payload length | payload
// Payload: u16 status | f64 cost | u32 headers length | headers JSON | body bytes
//
// The payload length is the *uncompressed* size: decompression is capped at it (garbage cannot
// inflate into a huge buffer) and checked against it. Cost is an f64 because nano-USD totals pass
// 2^32 (4.29 USD) and doubles are exact up to 2^53.
import zlib from "node:zlib";
import type { CachedResponse } from "../core/ports.ts";

const VERSION = 1;
const RAW = 0;
const BROTLI = 1;
const FRAME_HEADER = 6;
const PAYLOAD_HEADER = 14;

/** Items whose payload is larger than this are compressed; below it compression buys nothing. */
export const COMPRESS_ABOVE = 8 * 1024;

// Brotli quality 4, measured on 2-3 MB JSON/SSE bodies: better ratio than deflate at the same
// speed, and it decompresses faster than qualities 1-3 (decompression is on the hit path;
// compression happens after the response was sent). Sync: ~1-40 ms for multi-MB items, well
// under 1 ms for typical ones; the async API was slower (16 KiB chunks through the thread pool).
const BROTLI_QUALITY = 4;

export function encodeResponse(value: CachedResponse, compressAbove = COMPRESS_ABOVE): Buffer {
  const headers = Buffer.from(JSON.stringify(value.headers));
  // The raw frame is built in place (frame header, then payload) so the common, small case copies once.
  const raw = Buffer.allocUnsafe(FRAME_HEADER + PAYLOAD_HEADER + headers.length + value.body.byteLength);
  const payload = raw.subarray(FRAME_HEADER);
  raw.writeUInt8(VERSION, 0);
  raw.writeUInt8(RAW, 1);
  raw.writeUInt32BE(payload.length, 2);
  payload.writeUInt16BE(value.status, 0);
  payload.writeDoubleBE(value.cost, 2);
  payload.writeUInt32BE(headers.length, 10);
  headers.copy(payload, PAYLOAD_HEADER);
  payload.set(value.body, PAYLOAD_HEADER + headers.length);
  if (payload.length <= compressAbove) return raw;

  const compressed = zlib.brotliCompressSync(payload, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: payload.length,
    },
  });
  // Incompressible bodies (audio, base64) stay raw: decoding them is then free.
  if (compressed.length >= payload.length) return raw;
  raw.writeUInt8(BROTLI, 1);
  return Buffer.concat([raw.subarray(0, FRAME_HEADER), compressed]);
}

/** The response in `data`, or undefined for anything that is not a frame we wrote. Never throws. */
export function decodeResponse(data: Uint8Array): CachedResponse | undefined {
  try {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (buf.length < FRAME_HEADER || buf[0] !== VERSION) return undefined;
    const size = buf.readUInt32BE(2);
    const stored = buf.subarray(FRAME_HEADER);
    let payload: Buffer;
    if (buf[1] === RAW) payload = stored;
    else if (buf[1] === BROTLI) payload = zlib.brotliDecompressSync(stored, { maxOutputLength: Math.max(size, 1) });
    else return undefined;
    if (payload.length !== size || size < PAYLOAD_HEADER) return undefined;

    const status = payload.readUInt16BE(0);
    const cost = payload.readDoubleBE(2);
    const headersEnd = PAYLOAD_HEADER + payload.readUInt32BE(10);
    if (status < 100 || status > 599 || !Number.isFinite(cost) || headersEnd > size) return undefined;
    const headers: unknown = JSON.parse(payload.toString("utf8", PAYLOAD_HEADER, headersEnd));
    if (!isHeaderList(headers)) return undefined;
    return { status, headers, body: payload.subarray(headersEnd), cost };
  } catch {
    return undefined; // corrupt compressed data, bad JSON, short buffer
  }
}

/** Whether an encoded item was stored compressed (for tests and stats). */
export function isCompressed(data: Uint8Array): boolean {
  return data.length >= FRAME_HEADER && data[0] === VERSION && data[1] === BROTLI;
}

function isHeaderList(v: unknown): v is [string, string][] {
  return (
    Array.isArray(v) &&
    v.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === "string" && typeof h[1] === "string")
  );
}
