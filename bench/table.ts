/**
 * Figures and the main table of bench/proxy.ts. Without a peer the columns are direct, proxy, added,
 * proxy/direct, target; with one (`--peer`), the peer's value, added time and ratios sit beside the
 * stack's, and `wrapi/<peer>` compares the two gateways directly.
 */

export const pct = (xs: number[], p: number): number => {
  if (!xs.length) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
export const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(3)} ms` : 'n/a');
export const plus = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(3)} ms` : 'n/a');
export const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : 'n/a');
export const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
export const verdict = (ok: boolean, note = '') => `${ok ? 'PASS' : 'FAIL'}${note ? ` ${note}` : ''}`;
/** A target set against a peer gateway; against a floor (a peer that is not judged) only information. */
export const peerVerdict = (peer: { judged: boolean }, ok: boolean, note: string) =>
  peer.judged ? verdict(ok, note) : `(info: ${ok ? 'meets' : 'not'} ${note.slice(1, -1)}; a floor, not a target)`;

/** case, direct, proxy, added, proxy/direct, target */
export type Cells = [string, string, string, string, string, string];

/** The peer's cells of one row: its value, its added time, peer/direct, and proxy/peer. */
export interface PeerCells {
  value: string;
  added?: string;
  ratio?: string;
  vsPeer?: string;
}

export interface Row {
  cells: Cells;
  peer?: PeerCells;
}

/** The peer's cells of a latency row: `peer` and `proxy` at one percentile, `direct` the same. */
export function peerLatency(direct: number, proxy: number, peer: number): PeerCells {
  return { value: ms(peer), added: plus(peer - direct), ratio: ratio(peer, direct), vsPeer: ratio(proxy, peer) };
}

/** The table as lines of text; `peerLabel` set: the peer's columns are shown. */
export function tableLines(title: string, rows: Row[], peerLabel?: string): string[] {
  const shape = (r: Row): string[] => {
    const [label, direct, proxy, added, vsDirect, target] = r.cells;
    if (!peerLabel) return [...r.cells];
    const p = r.peer ?? { value: '' };
    return [label, direct, p.value, proxy, p.added ?? '', added, p.ratio ?? '', vsDirect, p.vsPeer ?? '', target];
  };
  const head: string[] = peerLabel
    ? ['case', 'direct', peerLabel, 'openai-wrapi', `${peerLabel} added`, 'wrapi added', `${peerLabel}/direct`, 'wrapi/direct', `wrapi/${peerLabel}`, 'target']
    : ['case', 'direct', 'proxy', 'added', 'proxy/direct', 'target'];
  const all = [head, ...rows.map(shape)];
  const last = head.length - 1;
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 || i === last ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [title, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)];
}
