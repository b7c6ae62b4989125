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

/**
 * USD for people, exact to the nano-dollar the ledger counts in: at least cents (`$12.50`), more
 * digits only where the amount has them (`$0.000123`), never an exponent or a bare `$0.`.
 */
export function usd(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const [whole, frac = ''] = decimal(n).split('.');
  return `$${whole}.${frac.padEnd(2, '0')}`;
}

/** Per-million-token prices: as given (`0.0000001`, not `1e-7`), without float noise. */
export function price(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : Number.isFinite(n) ? decimal(n) : String(n);
}

/**
 * A number in plain decimal notation, rounded to 9 places (float noise such as 0.1 + 0.2 goes), with
 * no trailing zeros. A non-zero amount too small for that is written out in full, never as 0.
 */
export function decimal(n: number): string {
  const rounded = n.toFixed(9).replace(/\.?0+$/, '');
  if ((rounded !== '0' && rounded !== '-0') || n === 0) return rounded === '-0' ? '0' : rounded;
  return expand(n);
}

/** `4e-10` → `0.0000000004`: the shortest round-trip digits, without the exponent (|n| < 1e-9 only). */
function expand(n: number): string {
  const [mantissa, exp] = Math.abs(n).toExponential().split('e');
  return `${n < 0 ? '-' : ''}0.${'0'.repeat(-Number(exp) - 1)}${mantissa.replace('.', '')}`;
}

export const count = (n: number): string => n.toLocaleString('en-US');

export const percent = (part: number, whole: number): string => (whole > 0 ? `${Math.round((part / whole) * 100)}%` : '-');
