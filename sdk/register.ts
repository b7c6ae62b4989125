/**
 * `import 'openai-wrapi/register'` (or `require('openai-wrapi/register')`): clients that other
 * libraries construct from the `openai` package — LangChain's `ChatOpenAI` and `OpenAIEmbeddings`,
 * and any `new OpenAI()` — call the current stage's proxy, signed with AWS credentials, billed to
 * the current project (see `setProject`, `setStaging`, `setCaching`). Clients given a base URL
 * other than OpenAI's are left alone. Importing `openai-wrapi` does the same.
 */
import { openAIClasses, patchOpenAIClass, unpatchOpenAIClass } from './patch.ts';
import { API_KEY_PLACEHOLDER } from './client.ts';

export { getSettings, resetSettings, setCaching, setProject, setStaging } from './settings.ts';
export { patchOpenAIClass } from './patch.ts';

const patched = new Set<object>();

function patchAll(classes: object[]): void {
  for (const c of classes) {
    patchOpenAIClass(c as { prototype: object });
    patched.add(c);
  }
}

/**
 * Patches every `openai` class in reach (done on import; call again after {@link unregister}).
 * The promise settles once classes that had to be loaded asynchronously (Node before 20.19) are
 * patched too.
 */
export function register(): Promise<void> {
  // `openai` (and LangChain) refuse to build a client without a key; the proxy never sees it.
  if (typeof process !== 'undefined' && !process.env.OPENAI_API_KEY) process.env.OPENAI_API_KEY = API_KEY_PLACEHOLDER;
  const found = openAIClasses();
  patchAll(found.classes);
  return found.pending.then(patchAll);
}

/** Settles when every `openai` class in reach is patched. */
export const registered: Promise<void> = register();

/** Removes the patch from every class this module patched. */
export function unregister(): void {
  for (const c of patched) unpatchOpenAIClass(c as { prototype: object });
  patched.clear();
}
