// The response cache on memcached (ElastiCache on AWS) through memjs.
//
// A dead or hung cache must cost (almost) nothing: every call races our own timer, and after a
// connection failure or timeout a per-server circuit breaker skips that server for a cool-down;
// then a single call probes it again. Why our own timer: memjs fails a request only on a socket
// *error* or its own timeout, and its timeout lives on the socket; when the server closes the
// connection cleanly (FIN: a killed memcached, sometimes; a proxy) a request in flight is never
// answered nor failed. Measured: ~1 in 10 gets issued right as memcached was killed hung forever.
import { createHash } from "node:crypto";
import memjs from "memjs";
import type { CachedResponse, Logger, ResponseCache } from "../core/ports.ts";
import { decodeResponse, encodeResponse } from "./cache-codec.ts";

export interface MemcachedCacheOptions {
  /** "host:port,host:port"; keys are spread over the servers by memjs's hash. */
  servers: string;
  /** Per get/set. Default 50 ms. */
  timeoutMs?: number;
  /** Encoded (compressed) items above this are skipped. Default 1 MiB - 1 KiB (memcached's -I 1m less item overhead). */
  maxItemBytes?: number;
  keyPrefix?: string;
  logger?: Logger;
  /** How long a failed server is skipped. Default 5 s. */
  coolDownMs?: number;
}

type Server = memjs.Client["servers"][number];

const MAX_KEY = 250; // memcached: at most 250 bytes, no spaces or control characters
const KEY_CHARS = /^[\x21-\x7e]*$/;
const MAX_RELATIVE_TTL = 30 * 24 * 3600; // memcached reads larger expirations as a Unix time
const quiet = { log() {} }; // memjs logs every failure to console by default

export function createMemcachedCache(opts: MemcachedCacheOptions): ResponseCache {
  const timeoutMs = opts.timeoutMs ?? 50;
  const maxItemBytes = opts.maxItemBytes ?? 1024 * 1024 - 1024;
  const coolDownMs = opts.coolDownMs ?? 5000;
  const prefix = opts.keyPrefix ?? "";
  if (!KEY_CHARS.test(prefix) || prefix.length > MAX_KEY - 64) throw new Error(`invalid memcached keyPrefix: ${prefix}`);

  const client = memjs.Client.create(opts.servers, {
    // memjs timeouts are in seconds (fractions work); ours below are the ones that count.
    timeout: timeoutMs / 1000,
    conntimeout: timeoutMs / 1000,
    retries: 0,
    keepAlive: true,
    logger: quiet,
  });
  const skipUntil = new Map<Server, number>(); // the circuit breaker: server -> end of cool-down
  let closed = false;

  /** Run `op` against `key`'s server unless it is cooling down; undefined on any failure. */
  async function guarded<T>(key: string, op: () => Promise<T>): Promise<T | undefined> {
    const server = client.server(key);
    if (closed || !server) return undefined;
    const now = Date.now();
    if ((skipUntil.get(server) ?? 0) > now) return undefined;
    // Half-open: while this call probes a server whose cool-down ended, others keep skipping it.
    if (skipUntil.has(server)) skipUntil.set(server, now + coolDownMs);
    try {
      const result = await withTimeout(op(), timeoutMs);
      if (skipUntil.delete(server)) opts.logger?.info("memcached back", { server: name(server) });
      return result;
    } catch (err) {
      // The server answered with an error status (e.g. value too large, out of memory): it is up.
      if (isServerReply(err)) {
        skipUntil.delete(server);
        return undefined;
      }
      if (!skipUntil.has(server)) {
        opts.logger?.error("memcached unavailable, skipping it", { server: name(server), coolDownMs, error: message(err) });
      }
      skipUntil.set(server, Date.now() + coolDownMs);
      return undefined;
    }
  }

  return {
    async get(key) {
      const k = toKey(prefix, key);
      const got = await guarded(k, () => client.get(k));
      return got?.value ? decodeResponse(got.value) : undefined;
    },

    async set(key: string, value: CachedResponse, ttlSeconds: number) {
      let item: Buffer;
      try {
        item = encodeResponse(value);
      } catch {
        return; // not encodable (e.g. status out of range): just not cached
      }
      if (item.length > maxItemBytes) return;
      const k = toKey(prefix, key);
      await guarded(k, () => client.set(k, item, { expires: expiration(ttlSeconds) }));
    },

    async flush() {
      // An admin's request: try even servers in cool-down, wait longer, and report failure.
      await withTimeout(client.flush(), Math.max(timeoutMs, 2000));
      skipUntil.clear();
    },

    async close() {
      closed = true;
      client.close();
    },
  };
}

/** The memcached key: prefix + key, hashed when the result would not be a valid key. */
function toKey(prefix: string, key: string): string {
  const full = prefix + key;
  if (full.length <= MAX_KEY && KEY_CHARS.test(key)) return full;
  return prefix + createHash("sha256").update(key).digest("hex");
}

/**
 * memcached's expiry ticks once per second, so a relative TTL of n lives between n-1 and n seconds
 * (ttl 1 can expire at once). One second more guarantees a hit for the whole TTL. ttl <= 0: never.
 */
function expiration(ttlSeconds: number): number {
  if (!(ttlSeconds > 0 && Number.isFinite(ttlSeconds))) return 0;
  const relative = Math.ceil(ttlSeconds) + 1;
  return relative <= MAX_RELATIVE_TTL ? relative : Math.floor(Date.now() / 1000) + relative;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`memcached: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** memjs reports server status errors as "MemJS GET: <status text>" (likewise SET). */
function isServerReply(err: unknown): boolean {
  return /^MemJS (GET|SET): /.test(message(err));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function name(server: Server): string {
  return `${server.host}:${server.port}`;
}
