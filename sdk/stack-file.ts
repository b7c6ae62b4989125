// Reads a Pulumi stack settings file (`Pulumi.<stack>.yaml`) without Pulumi and without a YAML
// package: the YAML that `pulumi config set` writes and people write by hand in these files, i.e.
// block mappings and sequences, plain and quoted scalars, flow lists and maps (`[a, b]`,
// `{secure: …}`), comments and block scalars (`|`, `>`). Anything else (anchors, tags, multi-line
// plain or quoted scalars, several documents) is refused with its line number rather than guessed.

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

export class StackFileError extends Error {
  override name = 'StackFileError';
}

interface Line {
  /** 1-based, for messages. */
  no: number;
  indent: number;
  /** The line without its indentation and its comment. */
  text: string;
  /** The raw line (block scalars keep their text as written). */
  raw: string;
}

/** Parses the subset described above; throws a {@link StackFileError} naming the line it could not read. */
export function parseStackYaml(source: string): YamlValue {
  const lines: Line[] = [];
  source.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((raw, i) => {
    const no = i + 1;
    const indentText = /^[ \t]*/.exec(raw)![0];
    const text = stripComment(raw.slice(indentText.length)).trimEnd();
    if (text === '') return lines.push({ no, indent: -1, text: '', raw });
    if (indentText.includes('\t')) throw new StackFileError(`line ${no}: a tab in the indentation (YAML indents with spaces)`);
    if (text === '---' && lines.every((l) => l.indent < 0)) return; // a document start before any content
    if (text === '---' || text === '...') throw new StackFileError(`line ${no}: more than one YAML document`);
    lines.push({ no, indent: indentText.length, text, raw });
  });
  const reader = new Reader(lines);
  reader.skipBlank();
  if (reader.done()) return null;
  const value = reader.block(reader.peek()!.indent);
  reader.skipBlank();
  const rest = reader.peek();
  if (rest) throw new StackFileError(`line ${rest.no}: unexpected indentation`);
  return value;
}

class Reader {
  private i = 0;
  constructor(private readonly lines: Line[]) {}

  done(): boolean {
    return this.i >= this.lines.length;
  }

  peek(): Line | undefined {
    return this.lines[this.i];
  }

  skipBlank(): void {
    while (this.lines[this.i]?.indent === -1) this.i++;
  }

  /** A mapping or a sequence whose lines start at `indent`. */
  block(indent: number): YamlValue {
    this.skipBlank();
    const first = this.peek()!;
    return isSequenceItem(first.text) ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (this.skipBlank(); !this.done(); this.skipBlank()) {
      const line = this.peek()!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new StackFileError(`line ${line.no}: unexpected indentation`);
      if (!isSequenceItem(line.text)) break;
      const rest = line.text.slice(1).replace(/^ +/, '');
      const restIndent = line.indent + (line.text.length - rest.length);
      this.i++;
      if (rest === '') {
        items.push(this.nested(indent));
      } else if (isSequenceItem(rest) || splitKey(rest, line.no)) {
        // `- key: value` (or `- - x`): a block whose first line shares the dash's line.
        this.lines.splice(this.i, 0, { no: line.no, indent: restIndent, text: rest, raw: line.raw });
        items.push(this.block(restIndent));
      } else {
        items.push(this.inline(rest, line, indent));
      }
    }
    return items;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const map: { [key: string]: YamlValue } = {};
    for (this.skipBlank(); !this.done(); this.skipBlank()) {
      const line = this.peek()!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new StackFileError(`line ${line.no}: unexpected indentation`);
      if (isSequenceItem(line.text)) break; // a sequence at the key's own indentation ends here
      const pair = splitKey(line.text, line.no);
      if (!pair) throw new StackFileError(`line ${line.no}: expected "key: value"`);
      this.i++;
      if (Object.hasOwn(map, pair.key)) throw new StackFileError(`line ${line.no}: "${pair.key}" is set twice`);
      map[pair.key] = pair.rest === '' ? this.nested(indent, true) : this.inline(pair.rest, line, indent);
    }
    return map;
  }

  /** The value of a key or dash with nothing after it: a more indented block, else null. */
  private nested(indent: number, sequenceMayShareIndent = false): YamlValue {
    this.skipBlank();
    const next = this.peek();
    if (next && next.indent > indent) return this.block(next.indent);
    // `key:` followed by `- item` at the key's own indentation is a list too.
    if (sequenceMayShareIndent && next && next.indent === indent && isSequenceItem(next.text)) return this.sequence(indent);
    return null;
  }

  /** A value on the same line: a scalar, a flow collection, or a block scalar's header. */
  private inline(text: string, line: Line, indent: number): YamlValue {
    if (/^[|>][-+0-9]*$/.test(text)) return this.blockScalar(text, indent);
    if (/^[&*!]/.test(text)) throw new StackFileError(`line ${line.no}: anchors, aliases and tags are not read here`);
    // A plain or quoted scalar cannot continue on the next, more indented line here.
    const next = this.lines[this.i];
    if (next && next.indent > indent && !isSequenceItem(text)) {
      throw new StackFileError(`line ${next.no}: a value continued over several lines (write it on one line)`);
    }
    return flowValue(text, line.no);
  }

  private blockScalar(header: string, indent: number): string {
    const parts: string[] = [];
    let blockIndent = -1;
    while (!this.done()) {
      const line = this.lines[this.i];
      if (line.indent !== -1 && line.indent <= indent) break;
      const leading = /^ */.exec(line.raw)![0].length;
      if (line.indent !== -1 && blockIndent < 0) blockIndent = leading;
      parts.push(line.raw.trim() === '' ? '' : line.raw.slice(Math.max(blockIndent, 0)));
      this.i++;
    }
    while (parts.length && parts.at(-1) === '') parts.pop();
    const text = header.startsWith('>') ? parts.join(' ').replace(/ ?\n ?/g, '\n') : parts.join('\n');
    return header.includes('-') ? text : `${text}\n`;
  }
}

const isSequenceItem = (text: string) => text === '-' || text.startsWith('- ');

/** `key: rest` at the first `:` followed by a space or the end, outside quotes and brackets. */
function splitKey(text: string, no: number): { key: string; rest: string } | undefined {
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = quotedEnd(text, 0, no);
    const after = text.slice(end + 1);
    const m = /^ *:(?: +|$)/.exec(after);
    if (!m) return undefined;
    return { key: String(quoted(text.slice(0, end + 1), no)), rest: after.slice(m[0].length).trim() };
  }
  if (/^[[{]/.test(text)) return undefined;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ':' && (i + 1 === text.length || text[i + 1] === ' ')) {
      return { key: text.slice(0, i).trimEnd(), rest: text.slice(i + 1).trim() };
    }
  }
  return undefined;
}

/** The line without a comment: `#` at the start or after a space, outside quotes. */
function stripComment(text: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) {
        if (quote === "'" && text[i + 1] === "'") i++;
        else quote = undefined;
      }
    } else if (c === '"' || c === "'") {
      // Quotes open a scalar only where one starts (not in the middle of `it's`).
      if (i === 0 || /[\s[{,:-]/.test(text[i - 1])) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      return text.slice(0, i);
    }
  }
  return text;
}

/** Index of the closing quote of the scalar that starts at `start`. */
function quotedEnd(text: string, start: number, no: number): number {
  const q = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (q === '"' && text[i] === '\\') i++;
    else if (text[i] === q) {
      if (q === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  throw new StackFileError(`line ${no}: a quoted value that does not end on its line`);
}

const ESCAPES: Record<string, string> = { '0': '\0', a: '\x07', b: '\b', t: '\t', '\t': '\t', n: '\n', v: '\v', f: '\f', r: '\r', e: '\x1b', ' ': ' ', '"': '"', '/': '/', '\\': '\\', N: '\x85', _: '\xa0', L: '\u2028', P: '\u2029' };

function quoted(text: string, no: number): string {
  const body = text.slice(1, -1);
  if (text[0] === "'") return body.replace(/''/g, "'");
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, e: string) => {
    if (e.length > 1) return String.fromCodePoint(parseInt(e.slice(1), 16));
    if (!(e in ESCAPES)) throw new StackFileError(`line ${no}: unknown escape "\\${e}"`);
    return ESCAPES[e];
  });
}

/** A scalar or a flow collection, all of `text`. */
function flowValue(text: string, no: number): YamlValue {
  const [value, end] = flowAt(text, 0, no, false);
  if (text.slice(end).trim() !== '') throw new StackFileError(`line ${no}: unexpected "${text.slice(end).trim()}"`);
  return value;
}

/** Reads one value at `i`; inside a flow collection a plain scalar stops at `,` `]` `}`. */
function flowAt(text: string, i: number, no: number, inFlow: boolean): [YamlValue, number] {
  while (text[i] === ' ') i++;
  const c = text[i];
  if (c === '"' || c === "'") {
    const end = quotedEnd(text, i, no);
    return [quoted(text.slice(i, end + 1), no), end + 1];
  }
  if (c === '[' || c === '{') {
    const close = c === '[' ? ']' : '}';
    const list: YamlValue[] = [];
    const map: { [key: string]: YamlValue } = {};
    i++;
    for (;;) {
      while (text[i] === ' ') i++;
      if (text[i] === close) return [c === '[' ? list : map, i + 1];
      if (i >= text.length) throw new StackFileError(`line ${no}: "${c}" without its "${close}" on the same line`);
      if (c === '[') {
        const [item, next] = flowAt(text, i, no, true);
        list.push(item);
        i = next;
      } else {
        const [key, afterKey] = flowAt(text, i, no, true);
        i = afterKey;
        while (text[i] === ' ') i++;
        let value: YamlValue = null;
        if (text[i] === ':') [value, i] = flowAt(text, i + 1, no, true);
        map[String(key)] = value;
      }
      while (text[i] === ' ') i++;
      if (text[i] === ',') i++;
      else if (text[i] !== close) throw new StackFileError(`line ${no}: expected "," or "${close}"`);
    }
  }
  let end = i;
  if (inFlow) {
    while (end < text.length && !/[,\]}]/.test(text[end]) && !(text[end] === ':' && /[\s,\]}]|^$/.test(text[end + 1] ?? ''))) end++;
  } else {
    end = text.length;
  }
  return [plain(text.slice(i, end).trim()), end];
}

/** YAML 1.2 core schema: null, booleans, integers and floats; everything else a string. */
function plain(text: string): YamlValue {
  if (/^(null|Null|NULL|~|)$/.test(text)) return null;
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(text)) return Number(text);
  return text;
}
