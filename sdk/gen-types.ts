// Dev tool: regenerates the `OpenAI.*` type namespace at the end of sdk/client.ts from the
// installed openai package, so `OpenAI.ChatCompletion` etc. work with `import OpenAI from
// 'openai-wrapi'`. Run after upgrading openai: npx tsx sdk/gen-types.ts
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface NamespaceMember {
  name: string;
  /** Has a value (a class or resource), not only a type. */
  value: boolean;
  /** Number of type parameters, for type-only generics. */
  generic: number;
}

/**
 * The members of `declare namespace OpenAI` in an openai package's declarations (client.d.ts from
 * openai 5, index.d.ts before): this repository's, or the one in `dir`.
 */
export function openaiNamespace(dir = dirname(createRequire(import.meta.url).resolve('openai'))): NamespaceMember[] {
  const file = ['client.d.ts', 'index.d.ts'].map((f) => join(dir, f)).find((f) => existsSync(f) && /export declare namespace OpenAI \{/.test(readFileSync(f, 'utf8')));
  const block = file && /export declare namespace OpenAI \{([\s\S]*?)\n\}/.exec(readFileSync(file, 'utf8'))?.[1];
  if (!block) throw new Error(`no \`declare namespace OpenAI\` in ${dir}`);
  const members: NamespaceMember[] = [];
  for (const m of block.matchAll(/export type (\w+)\s*=/g)) members.push({ name: m[1], value: false, generic: 0 });
  for (const m of block.matchAll(/export import (\w+)\s*=/g)) members.push({ name: m[1], value: true, generic: 0 });
  for (const m of block.matchAll(/export \{([^}]*)\}/g)) {
    for (const raw of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const typeOnly = raw.startsWith('type ');
      const name = raw.replace(/^type\s+/, '').split(/\s+as\s+/).pop()!.trim();
      members.push({ name, value: !typeOnly, generic: 0 });
    }
  }
  // Type-only generics need their parameters spelled out; openai's are the page response types.
  for (const m of members) if (!m.value && /PageResponse$/.test(m.name)) m.generic = 1;
  return members;
}

/** The member names our namespace declares. */
export function ourNamespace(source: string): string[] {
  const block = /BEGIN GENERATED NAMESPACE([\s\S]*?)END GENERATED NAMESPACE/.exec(source)?.[1] ?? '';
  return [...block.matchAll(/export (?:import|type) (\w+)/g)].map((m) => m[1]);
}

function render(members: NamespaceMember[]): string {
  const lines = members.map((m) => {
    if (m.value) return `  export import ${m.name} = BaseOpenAI.${m.name};`;
    if (m.generic) return `  export type ${m.name}<Item> = BaseOpenAI.${m.name}<Item>;`;
    return `  export type ${m.name} = BaseOpenAI.${m.name};`;
  });
  const packed: string[] = [];
  for (const line of lines) {
    const last = packed.length - 1;
    if (last >= 0 && packed[last].length + line.length - 1 <= 118) packed[last] += line.slice(1);
    else packed.push(line);
  }
  return `// BEGIN GENERATED NAMESPACE\nexport declare namespace OpenAI {\n${packed.join('\n')}\n}\n// END GENERATED NAMESPACE`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = new URL('./client.ts', import.meta.url).pathname;
  const source = readFileSync(file, 'utf8');
  const next = source.replace(/\/\/ BEGIN GENERATED NAMESPACE[\s\S]*\/\/ END GENERATED NAMESPACE/, render(openaiNamespace()));
  writeFileSync(file, next);
  console.log(`sdk/client.ts: ${openaiNamespace().length} names in namespace OpenAI`);
}
