// Cache latency: median µs of get (hit, miss) and set for the LRU and a local memcached, the codec
// on big items, and what a get costs when memcached is dead or hung (first call, then cool-down).
// Run: npx tsx bench/cache.ts   (needs the memcached binary: apt-get install -y memcached)
import { randomBytes } from "node:crypto";
import type { CachedResponse, ResponseCache } from "../runtime/core/ports.ts";
import { decodeResponse, encodeResponse } from "../runtime/store/cache-codec.ts";
import { createLruCache } from "../runtime/store/lru-cache.ts";
import { createMemcachedCache } from "../runtime/store/memcached-cache.ts";
import { startMemcached } from "../test/helpers/memcached.ts";

const headers: [string, string][] = [["content-type", "application/json"], ["x-request-id", "req_123"]];

/** A chat completion-like JSON body of about `bytes` (words from a seeded generator). */
function body(bytes: number): Uint8Array {
  const words = "the model answer is a cache proxy token and of to which returns value".split(" ");
  let [text, seed] = ["", 42];
  while (text.length < bytes) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; // LCG, 32-bit
    text += words[(seed >>> 16) % words.length] + " ";
  }
  return new TextEncoder().encode(JSON.stringify({ id: "chatcmpl-1", choices: [{ message: { content: text } }] }));
}
const item = (b: Uint8Array): CachedResponse => ({ status: 200, headers, body: b, cost: 1_234_567 });

async function median(n: number, op: (i: number) => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await op(i);
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[n >> 1] * 1000;
}

const us = (v: number) => `${v.toFixed(1)} µs`.padStart(12);
const rows: string[] = [];

async function measure(name: string, cache: ResponseCache, size: number, n: number) {
  const value = item(body(size));
  const set = await median(n, (i) => cache.set(`k${size}-${i}`, value, 600));
  const hit = await median(n, (i) => cache.get(`k${size}-${i}`));
  const miss = await median(n, (i) => cache.get(`absent-${i}`));
  rows.push(`${name.padEnd(10)} ${`${size / 1000} kB`.padStart(7)}  get hit ${us(hit)}  get miss ${us(miss)}  set ${us(set)}`);
}

const server = await startMemcached();
const memcached = createMemcachedCache({ servers: server.servers });
for (const [size, n] of [[2_000, 3000], [200_000, 300]] as const) {
  await measure("lru", createLruCache(), size, n);
  await measure("memcached", memcached, size, n);
}
await memcached.close?.();
await server.stop();

// The codec alone on multi-MB items (compression runs synchronously).
for (const [name, b] of [["3 MB JSON", body(3_000_000)], ["2 MB random", randomBytes(2_000_000)]] as const) {
  let encoded: Buffer = Buffer.alloc(0);
  const enc = await median(11, () => (encoded = encodeResponse(item(b))));
  const dec = await median(11, () => decodeResponse(encoded));
  rows.push(`codec ${name.padEnd(12)} encode ${us(enc)}  decode ${us(dec)}  stored ${(encoded.length / 1024) | 0} KiB`);
}

/** First get after the failure (on a connected client, unless `fail` is absent), then during the cool-down. */
async function dead(name: string, servers: string, fail?: () => void, recover?: () => void) {
  const cache = createMemcachedCache({ servers, timeoutMs: 50 });
  if (fail) {
    await cache.set("warm", item(body(100)), 60);
    await cache.get("warm");
    fail();
  }
  const first = await median(1, () => cache.get("warm"));
  const cooling = await median(1000, () => cache.get("warm"));
  rows.push(`${name.padEnd(28)} first get ${us(first)}  during cool-down ${us(cooling)}`);
  recover?.();
  await cache.close?.();
}

for (let i = 0; i < 3; i++) {
  const s = await startMemcached();
  await dead(`memcached killed (run ${i + 1})`, s.servers, () => s.kill());
}
await dead("memcached never there", "127.0.0.1:1");
const hung = await startMemcached();
await dead("memcached hung (SIGSTOP)", hung.servers, () => process.kill(hung.pid, "SIGSTOP"), () => process.kill(hung.pid, "SIGCONT"));
await hung.stop();

console.log(rows.join("\n"));
