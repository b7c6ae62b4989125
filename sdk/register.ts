/**
 * `import 'openai-wrapi/register'` (or `require('openai-wrapi/register')`, or `node --import
 * openai-wrapi/register app.js`): clients that other libraries construct from the `openai` package
 * — LangChain's `ChatOpenAI` and `OpenAIEmbeddings`, and any `new OpenAI()` — call the current
 * stage's proxy, signed with AWS credentials, billed to the current project (see `setProject`,
 * `setStaging`, `setCaching`). Every copy of `openai` in the process is patched, nested ones and
 * ones loaded later included. Clients given a base URL other than OpenAI's are left alone.
 * Importing `openai-wrapi` does the same.
 */
import * as ownOpenAI from 'openai';
import { guardRealtime, patchOpenAICopy, unpatchOpenAIClass } from './patch.ts';
import { API_KEY_PLACEHOLDER } from './client.ts';
import { ownCopyDir, watchOpenAICopies, type OpenAICopy } from './openai-copies.ts';

export { getSettings, resetSettings, setCaching, setProject, setStaging } from './settings.ts';
export { patchOpenAIClass } from './patch.ts';

const patched = new Set<object>();
let active = false;

function patchCopy(copy: OpenAICopy): void {
  if (!active) return;
  patched.add(patchOpenAICopy(copy));
}

/**
 * Patches every copy of `openai` loaded now or later (done on import; call again after
 * {@link unregister}). The promise settles once copies that had to be imported asynchronously
 * (Node before 20.19) are patched too.
 */
export function register(): Promise<void> {
  // `openai` (and LangChain) refuse to build a client without a key; the proxy never sees it.
  if (typeof process !== 'undefined' && !process.env.OPENAI_API_KEY) process.env.OPENAI_API_KEY = API_KEY_PLACEHOLDER;
  active = true;
  patchCopy({ exports: ownOpenAI, dir: ownCopyDir() });
  return watchOpenAICopies(patchCopy, guardRealtime);
}

/** Settles when every `openai` class in reach is patched. */
export const registered: Promise<void> = register();

/** Removes the patch from every class this module patched. */
export function unregister(): void {
  active = false;
  for (const c of patched) unpatchOpenAIClass(c as { prototype: object });
  patched.clear();
}
