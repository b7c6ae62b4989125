// Terminal output of the CLI: aligned tables and money, and names made safe to print.

export type Align = 'left' | 'right';

/**
 * Characters a terminal acts on or that reorder text: C0 and C1 controls, DEL (ESC starts an OSC 52
 * clipboard write, a title change, cursor moves), line separators and bidi overrides.
 */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
/** What JSON.stringify leaves raw of those: it escapes only C0. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A name as visible escapes (`\x1b`, `\u{202e}`) where it has characters a terminal would act on. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** JSON for a terminal or a script: the same value, with every unsafe character as a `\u` escape. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. Cells are printable(). */
export function formatTable(headers: string[], rawRows: string[][], align: Align[] = []): string {
  const rows = rawRows.map((r) => r.map((c) => printable(c ?? '')));
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
