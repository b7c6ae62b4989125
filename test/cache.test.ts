// The ResponseCache implementations: one set of cases run against the LRU and a real memcached,
// then memcached's failure modes (killed, hung, never there) and the codec.
import { randomBytes } from "node:crypto";
import memjs from "memjs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CachedResponse, ResponseCache } from "../runtime/core/ports.ts";
import { decodeResponse, encodeResponse, isCompressed } from "../runtime/store/cache-codec.ts";
import { createLruCache } from "../runtime/store/lru-cache.ts";
import { createMemcachedCache } from "../runtime/store/memcached-cache.ts";
import { startMemcached, type MemcachedServer } from "./helpers/memcached.ts";
import { hasMemcached, unless } from "./helpers/binaries.ts";

const memcached = hasMemcached();

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const key = (n: string) => n.padEnd(64, "0"); // the core's keys are hex SHA-256
// Where a case is not about timing, a generous per-call timeout: the default 50 ms is a production
// figure, and a first connect on a loaded two-core CI machine can miss it, trip the breaker and
// turn the next 5 s of cases into misses.
const RELAXED = { timeoutMs: 1000 };

function response(body: Uint8Array): CachedResponse {
  const headers: [string, string][] = [["content-type", "application/json"], ["x-request-id", "req_é1"]];
  return { status: 201, headers, body, cost: 2 ** 40 + 7 };
}

/** ~3 MB of SSE transcript: compressible like real ones (words from a seeded generator). */
function bigTranscript(bytes = 3_000_000): Uint8Array {
  const words = "the model answer is a cache proxy token and of to which returns value".split(" ");
  let seed = 42;
  let s = "";
  while (s.length < bytes) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; // LCG, 32-bit
    s += `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" ${words[(seed >>> 16) % words.length]}"}}]}\n\n`;
  }
  return new TextEncoder().encode(s);
}

/** Until every thread of `pid` is stopped (Linux /proc): SIGSTOP returns before they all are. */
async function allThreadsStopped(pid: number): Promise<void> {
  const { readdirSync, readFileSync } = await import("node:fs");
  const state = (tid: string) => /^\d+ \(.*\) (\S)/s.exec(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"))?.[1];
  for (let i = 0; i < 500; i++) {
    if (readdirSync(`/proc/${pid}/task`).every((tid) => /^[Tt]$/.test(state(tid) ?? ""))) return;
    await sleep(2);
  }
  throw new Error(`memcached ${pid} did not stop`);
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await p;
  return [value, performance.now() - start];
}

// --- The same behaviour from both implementations -------------------------------------------

interface Subject {
  cache: ResponseCache;
  /** The configured max item size: the oversize case stores more than this, incompressible. */
  maxItemBytes: number;
  done(): Promise<void>;
}

function conformance(name: string, open: () => Promise<Subject>, ok = true) {
  const test = unless(ok, suite<Subject>(`${name} cache`));
  test.before(async (ctx) => {
    Object.assign(ctx, await open());
  });
  test.after((ctx) => ctx.done());

  test("set then get returns status, headers, body bytes and cost exactly", async ({ cache }) => {
    const value = response(randomBytes(3000));
    await cache.set(key("a1"), value, 60);
    const got = await cache.get(key("a1"));
    assert.ok(got);
    assert.is(got.status, 201);
    assert.equal(got.headers, value.headers);
    assert.ok(Buffer.from(got.body).equals(value.body));
    assert.is(got.cost, value.cost);
    assert.is(await cache.get(key("absent")), undefined);
  });

  test("empty body and odd keys (spaces, > 250 bytes) work", async ({ cache }) => {
    const odd = "a key with spaces " + "x".repeat(300);
    await cache.set(odd, response(new Uint8Array()), 60);
    assert.is((await cache.get(odd))?.body.byteLength, 0);
  });

  test("TTL is respected", async ({ cache }) => {
    await cache.set(key("ttl"), response(new Uint8Array([1])), 1);
    assert.ok(await cache.get(key("ttl")));
    await sleep(2100); // memcached's clock ticks in seconds: an item lives at most ttl + 1 s
    assert.is(await cache.get(key("ttl")), undefined);
  });

  test("flush empties the cache", async ({ cache }) => {
    await cache.set(key("f1"), response(new Uint8Array([1])), 60);
    await cache.flush();
    assert.is(await cache.get(key("f1")), undefined);
  });

  test("a big compressible item comes back exact", async ({ cache }) => {
    const value = response(bigTranscript());
    await cache.set(key("big"), value, 60);
    const got = await cache.get(key("big"));
    assert.ok(got && Buffer.from(got.body).equals(value.body));
  });

  test("an incompressible item over the max item size is skipped, not an error", async ({ cache, maxItemBytes }) => {
    await cache.set(key("huge"), response(randomBytes(maxItemBytes + 1000)), 60);
    assert.is(await cache.get(key("huge")), undefined);
    await cache.set(key("after"), response(new Uint8Array([2])), 60); // and the cache still works
    assert.ok(await cache.get(key("after")));
  });

  test.run();
}

// The LRU stores bodies uncompressed: its max item size must fit the 3 MB transcript.
conformance("lru", async () => ({ cache: createLruCache({ maxItemBytes: 4 * MiB }), maxItemBytes: 4 * MiB, done: async () => {} }));

conformance("memcached", async () => {
  const server = await startMemcached();
  const cache = createMemcachedCache({ servers: server.servers, keyPrefix: "t:", ...RELAXED });
  return { cache, maxItemBytes: MiB, done: async () => (await cache.close?.(), await server.stop()) };
}, memcached);

// --- memcached specifics and failure modes --------------------------------------------------

const mc = unless(memcached, suite<{ server: MemcachedServer }>("memcached failures"));
mc.before(async (ctx) => void (ctx.server = await startMemcached()));
mc.after(({ server }) => server.stop());

mc("a big item is stored compressed", async ({ server }) => {
  const cache = createMemcachedCache({ servers: server.servers, keyPrefix: "c:", ...RELAXED });
  await cache.set(key("big"), response(bigTranscript()), 60);
  const raw = memjs.Client.create(server.servers, { logger: { log() {} } });
  const { value } = await raw.get("c:" + key("big"));
  raw.close();
  assert.ok(value && isCompressed(value) && value.length < 1 * MiB, `stored ${value?.length} bytes`);
  await cache.close?.();
});

mc("an item the server refuses (over its -I) is ignored and does not trip the breaker", async ({ server }) => {
  const cache = createMemcachedCache({ servers: server.servers, maxItemBytes: 4 * MiB, ...RELAXED });
  await cache.set(key("refused"), response(randomBytes(2 * MiB)), 60);
  assert.is(await cache.get(key("refused")), undefined);
  await cache.set(key("ok"), response(new Uint8Array([1])), 60);
  assert.ok(await cache.get(key("ok")));
  await cache.close?.();
});

mc("killed mid-test: quick misses, then back after the cool-down once restarted", async () => {
  const server = await startMemcached();
  const coolDownMs = 300;
  const cache = createMemcachedCache({ servers: server.servers, coolDownMs, timeoutMs: 200 });
  const value = response(new Uint8Array([1, 2, 3]));
  await cache.set(key("k"), value, 60);
  assert.ok(await cache.get(key("k")));

  server.kill();
  let restarted: Awaited<ReturnType<typeof startMemcached>> | undefined;
  try {
    // Quick misses, not retries against a dead server: judged by the median, so that one stall of a
    // loaded machine does not decide it, and by a ceiling far below a retrying client's.
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [got, ms] = await timed(cache.get(key("k")));
      assert.is(got, undefined);
      const [, setMs] = await timed(cache.set(key("k"), value, 60));
      times.push(ms, setMs);
    }
    times.sort((a, b) => a - b);
    assert.ok(times[times.length >> 1] < 250, `median ${times[times.length >> 1]} ms (all: ${times.join(', ')})`);
    assert.ok(times.at(-1)! < 2000, `slowest ${times.at(-1)} ms`);

    restarted = await startMemcached({ port: server.port });
    await sleep(coolDownMs + 50);
    await cache.set(key("k2"), value, 60);
    assert.ok(await cache.get(key("k2")), "works again after the cool-down");
  } finally {
    await cache.close?.();
    await restarted?.stop(); // a failed assertion must not leave memcached running (the file would never exit)
  }
});

mc("hung server (SIGSTOP): gets resolve after the timeout, then skip it", async () => {
  const server = await startMemcached();
  // A timeout well above a loaded machine's jitter, so a skip (well under it) stands out.
  const cache = createMemcachedCache({ servers: server.servers, timeoutMs: 300 });
  await cache.set(key("h"), response(new Uint8Array([1])), 60);
  process.kill(server.pid, "SIGSTOP");
  await allThreadsStopped(server.pid); // a stop is delivered to each thread on its own: wait for every one
  try {
    const [first, firstMs] = await timed(cache.get(key("h")));
    const [second, secondMs] = await timed(cache.get(key("h")));
    assert.is(first, undefined);
    assert.is(second, undefined);
    assert.ok(firstMs < 1000, `first get took ${firstMs} ms`);
    assert.ok(secondMs < 100, `get in cool-down took ${secondMs} ms`);
  } finally {
    process.kill(server.pid, "SIGCONT");
    await cache.close?.();
    await server.stop();
  }
});

mc("two servers, one dead: its keys miss, the live one's still hit", async ({ server }) => {
  const cache = createMemcachedCache({ servers: `${server.servers},127.0.0.1:1`, ...RELAXED });
  const keys = Array.from({ length: 20 }, (_, i) => key(`two${i}`));
  for (const k of keys) await cache.set(k, response(new Uint8Array([1])), 60);
  const hits = (await Promise.all(keys.map((k) => cache.get(k)))).filter(Boolean).length;
  assert.ok(hits > 0 && hits < keys.length, `${hits} hits of ${keys.length}`);
  await cache.close?.();
});

mc("a server that was never there: miss, no throw; flush rejects", async () => {
  const cache = createMemcachedCache({ servers: "127.0.0.1:1" });
  const [got, ms] = await timed(cache.get(key("x")));
  assert.is(got, undefined);
  assert.ok(ms < 500, `get took ${ms} ms`);
  await cache.set(key("x"), response(new Uint8Array([1])), 60);
  await cache.flush().then(
    () => assert.unreachable("flush should reject"),
    (err: Error) => assert.ok(err instanceof Error),
  );
  await cache.close?.();
});

// --- codec ------------------------------------------------------------------------------------

const codec = suite("cache codec");

codec("round trip, raw below the threshold and compressed above", () => {
  for (const body of [new Uint8Array(), randomBytes(100), bigTranscript(100_000)]) {
    const encoded = encodeResponse(response(body));
    assert.is(isCompressed(encoded), body.length > 10_000);
    const got = decodeResponse(encoded);
    assert.ok(got && Buffer.from(got.body).equals(body) && got.cost === 2 ** 40 + 7);
  }
});

codec("garbage decodes to undefined, never throws", () => {
  const good = encodeResponse(response(bigTranscript(50_000)));
  const flipped = Buffer.from(good);
  flipped[20] ^= 0xff;
  const lyingSize = Buffer.from(good);
  lyingSize.writeUInt32BE(10, 2);
  const junkBrotli = randomBytes(5000);
  [junkBrotli[0], junkBrotli[1]] = [1, 1];
  // A well-formed raw frame whose headers are not JSON.
  const badJson = Buffer.alloc(6 + 18);
  [badJson[0], badJson[5], badJson[7], badJson[19]] = [1, 18, 200, 4];
  badJson.write("nope", 20);
  const samples = [new Uint8Array(), randomBytes(5), junkBrotli, Buffer.from("hello"), good.subarray(0, 40), flipped, lyingSize, badJson];
  for (const garbage of samples) assert.is(decodeResponse(garbage), undefined);
});

codec.run();
mc.run();
