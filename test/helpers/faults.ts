// Faults a store write can meet, injected around the real write: it never reaches the store, it
// lands but its reply is lost, or it lands twice. Shared by the fault and property ledger suites.

export const FAULT_KINDS = ['fail', 'lost', 'dup'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * The property suites add one more: `late`, the reply is lost at once and the write lands whenever
 * the scheduler lets it, maybe after the call was given back or settled (see scheduled-ledger.ts).
 */
export const SCHEDULED_FAULT_KINDS = [...FAULT_KINDS, 'late'] as const;
export type ScheduledFaultKind = (typeof SCHEDULED_FAULT_KINDS)[number];

export class InjectedFailure extends Error {
  override name = 'InjectedFailure';
}

/** What a client throws when a reply does not come back in time (the write may well have landed). */
export class LostReply extends Error {
  override name = 'TimeoutError';
}

export async function inject<T>(kind: FaultKind | undefined, send: () => Promise<T>): Promise<T> {
  if (kind === undefined) return send();
  if (kind === 'fail') throw new InjectedFailure('injected: the write never reached the store');
  if (kind === 'lost') {
    await send().catch(() => undefined);
    throw new LostReply('injected: the write landed, its reply was lost');
  }
  const first = await send().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await send().catch(() => undefined);
  if ('error' in first) throw first.error;
  return first.value;
}
