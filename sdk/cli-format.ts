// Terminal output of the CLI: aligned tables and money.

export type Align = 'left' | 'right';

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. */
export function formatTable(headers: string[], rows: string[][], align: Align[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (align[i] === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** USD for people: cents when it is at least a cent, else enough digits to see it. */
export function usd(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs === 0 || abs >= 0.01) return `$${n.toFixed(2)}`;
  const digits = Math.min(9, 1 - Math.floor(Math.log10(abs)));
  return `$${n.toFixed(digits).replace(/0+$/, '')}`;
}

/** Per-million-token prices: as given, without float noise. */
export function price(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : String(Number(n.toPrecision(6)));
}

export const count = (n: number): string => n.toLocaleString('en-US');

export const percent = (part: number, whole: number): string => (whole > 0 ? `${Math.round((part / whole) * 100)}%` : '-');
