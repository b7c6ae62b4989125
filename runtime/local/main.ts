// `npm start`: the local stack on 127.0.0.1:${PORT:-8787}, until Ctrl-C. `npm start -- --demo` (or
// OPENAI_WRAPI_DEMO=1) answers every call from a simulated OpenAI instead: no key, no spend.
import { runLocalStack } from './run.ts';

const unknown = process.argv.slice(2).filter((arg) => arg !== '--demo');
if (unknown.length) {
  console.error(`openai-wrapi: unknown argument ${JSON.stringify(unknown[0])}; npm start takes only --demo`);
  process.exit(2);
}
await runLocalStack();
