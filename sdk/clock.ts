// Clock skew. A SigV4 signature carries its time, and a function URL refuses one more than 5
// minutes from its own (the local stack: 15). As the AWS SDK does for admin calls, learn the
// offset from the server's `Date` when it refuses a signature's time, keep it per host for the
// whole process, and sign once more with the corrected time.

const KEY = Symbol.for('openai-wrapi.clock-offsets');
/** Milliseconds to add to the local clock, per host; shared by every copy of this module. */
const offsets: Map<string, number> = ((globalThis as Record<symbol, unknown>)[KEY] as Map<string, number>) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = new Map<string, number>());

/** The local clock. Tests replace `now` to play a machine whose clock is off. */
export const localClock = { now: (): number => Date.now() };

/** The time to sign a request to `host` (`name:port`) with: the local clock, corrected for that host. */
export function signingDate(host: string): Date {
  return new Date(localClock.now() + (offsets.get(host) ?? 0));
}

/** AWS's wording (function URLs, STS) and the local stack's for a signature outside the time window. */
const TIME_REFUSAL = /signature expired|signature not yet current|request ?time ?too ?skewed/i;

async function isTimeRefusal(res: Response): Promise<boolean> {
  if (res.status !== 403) return false;
  const text = await res.clone().text().catch(() => '');
  return TIME_REFUSAL.test(text);
}

/**
 * Sends with `attempt`, which must sign afresh each time (with {@link signingDate}). When the
 * server refuses the signature's time, corrects the host's offset from its `Date` and tries once
 * more. When that cannot help, the answer is a 403 saying how far the local clock is off.
 */
export async function sendCorrectingSkew(url: string, attempt: (retry: boolean) => Promise<Response>): Promise<Response> {
  const host = new URL(url).host;
  const first = await attempt(false);
  if (!(await isTimeRefusal(first))) return first;
  const serverMs = serverTime(first);
  if (serverMs === undefined) return explain(first);
  offsets.set(host, serverMs - localClock.now());
  await first.body?.cancel().catch(() => undefined);
  const second = await attempt(true);
  return (await isTimeRefusal(second)) ? explain(second) : second;
}

function serverTime(res: Response): number | undefined {
  const ms = Date.parse(res.headers.get('date') ?? '');
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The refusal, reworded in OpenAI's error envelope (so the openai client throws it as a
 * PermissionDeniedError) and marked final: retrying with the same clock cannot succeed.
 */
async function explain(res: Response): Promise<Response> {
  const serverMs = serverTime(res);
  const local = localClock.now();
  const said = await reasonOf(res);
  let message: string;
  if (serverMs === undefined) {
    message = `The proxy refused the signature's time (${said}): your clock may be off (it reads ${new Date(local).toISOString()}), and the answer had no Date header to correct it by. Set the system clock right (turn on network time).`;
  } else {
    const minutes = Math.round(Math.abs(serverMs - local) / 60_000);
    const way = serverMs > local ? 'behind' : 'ahead of';
    message = `The proxy refused the signature's time (${said}): your clock is ${minutes} minutes off (${way} the proxy's, which reads ${new Date(serverMs).toISOString()}). Set the system clock right (turn on network time).`;
  }
  const headers = new Headers(res.headers);
  for (const name of ['content-length', 'content-encoding']) headers.delete(name);
  headers.set('content-type', 'application/json');
  headers.set('x-should-retry', 'false');
  const body = { error: { message, type: 'permission_denied', param: null, code: 'clock_skew' } };
  return new Response(JSON.stringify(body), { status: 403, statusText: res.statusText, headers });
}

/** The server's own words: OpenAI's envelope (the local stack) or AWS's `{"message": ...}`. */
async function reasonOf(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const json = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const message = json.error?.message ?? json.message;
    if (typeof message === 'string') return message.slice(0, 300);
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 300) || `HTTP ${res.status}`;
}
