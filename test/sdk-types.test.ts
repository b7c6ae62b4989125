// `import OpenAI from 'openai-wrapi'` must carry every `OpenAI.*` type of the installed openai
// package (the namespace in sdk/client.ts is generated: npx tsx sdk/gen-types.ts), and the drop-in
// must be the real class underneath.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { OpenAI as Base } from 'openai';
import OpenAI, { OpenAI as Named, isWrapiClient } from '../sdk/index.ts';
import { openaiNamespace, ourNamespace } from '../sdk/gen-types.ts';

test('every member of openai\'s OpenAI namespace is in ours (regenerate with npx tsx sdk/gen-types.ts)', () => {
  const ours = new Set(ourNamespace(readFileSync(new URL('../sdk/client.ts', import.meta.url), 'utf8')));
  const missing = openaiNamespace().map((m) => m.name).filter((n) => !ours.has(n));
  assert.equal(missing, []);
  assert.ok(ours.size > 150);
});

test('the drop-in is a subclass of the real OpenAI class, with its static resources', () => {
  assert.is(OpenAI, Named);
  assert.ok(OpenAI.prototype instanceof Base);
  for (const name of ['Chat', 'Completions', 'Embeddings', 'Responses', 'Models']) {
    assert.is((OpenAI as unknown as Record<string, unknown>)[name], (Base as unknown as Record<string, unknown>)[name], name);
  }
  assert.not.ok(isWrapiClient(new Base({ apiKey: 'x', baseURL: 'http://127.0.0.1:9/v1' })));
});

test.run();
