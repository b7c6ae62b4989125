/** The load generator's loops, shared by every side of a comparison in bench/proxy.ts. */
import { performance } from 'node:perf_hooks';

export interface Side<T> {
  samples: T[];
  wallMs: number;
}

/** `n` calls of `fn` by `concurrency` workers; bounded by n. */
export async function load<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<Side<T>> {
  const samples: T[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        samples.push(await fn(i));
      }
    }),
  );
  return { samples, wallMs: performance.now() - start };
}

/** The order in which the sides run their batches in round `round`: see compareSides. */
export function roundOrder(sides: number, round: number): number[] {
  const order = Array.from({ length: sides }, (_, k) => (k + round) % sides);
  if (sides > 2 && Math.floor(round / sides) % 2) order.reverse();
  return order;
}

/**
 * About `total` calls per side, in rounds of one batch per side. The order is rotated every round
 * (and, with three sides, reversed every other cycle: all six orders), so drifting machine noise hits
 * every side alike. Two sides: direct/proxy, then proxy/direct, and so on.
 */
export async function compareSides<T>(total: number, batch: number, concurrency: number, fns: ((i: number) => Promise<T>)[]): Promise<Side<T>[]> {
  const sides: Side<T>[] = fns.map(() => ({ samples: [], wallMs: 0 }));
  const rounds = Math.max(1, Math.round(total / batch));
  for (let b = 0; b < rounds; b++) {
    for (const k of roundOrder(fns.length, b)) {
      const r = await load(batch, concurrency, (i) => fns[k](b * batch + i));
      sides[k].samples.push(...r.samples);
      sides[k].wallMs += r.wallMs;
    }
  }
  return sides;
}
