// The in-process response cache of the local stack (used unless memcached servers are configured).
import { LRUCache } from "lru-cache";
import type { CachedResponse, ResponseCache } from "../core/ports.ts";

export interface LruCacheOptions {
  /** Total budget, counted in body (+ header) bytes. Default 64 MiB. */
  maxBytes?: number;
  /** Larger items are not stored (not an error). Default maxBytes / 8, at most 8 MiB. */
  maxItemBytes?: number;
}

const MiB = 1024 * 1024;

export function createLruCache(opts: LruCacheOptions = {}): ResponseCache {
  const maxBytes = opts.maxBytes ?? 64 * MiB;
  const lru = new LRUCache<string, CachedResponse>({
    maxSize: maxBytes,
    // lru-cache silently refuses (and drops any older value of the key) above maxEntrySize.
    // One item never evicts more than an eighth of the cache unless asked to.
    maxEntrySize: Math.min(opts.maxItemBytes ?? Math.min(maxBytes / 8, 8 * MiB), maxBytes),
    // Bodies dominate; headers are counted too so that empty bodies still have a (positive) size.
    sizeCalculation: (v) => v.body.byteLength + v.headers.reduce((n, [k, h]) => n + k.length + h.length, 1),
  });

  return {
    async get(key) {
      const v = lru.get(key);
      // A fresh headers list per hit: callers may add their own (e.g. the cache-hit marker).
      return v && { ...v, headers: v.headers.map(([k, h]): [string, string] => [k, h]) };
    },
    async set(key, value, ttlSeconds) {
      // Copy the body: the caller may reuse its buffer. ttl <= 0 (or not finite) means no expiry.
      const item = { ...value, headers: value.headers.map(([k, h]): [string, string] => [k, h]), body: value.body.slice() };
      const ttl = ttlSeconds > 0 && Number.isFinite(ttlSeconds) ? ttlSeconds * 1000 : undefined;
      lru.set(key, item, { ttl });
    },
    async flush() {
      lru.clear();
    },
    async close() {
      lru.clear();
    },
  };
}
