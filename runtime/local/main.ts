// `npm start`: the local stack on 127.0.0.1:${PORT:-8787}, until Ctrl-C.
import { runLocalStack } from './run.ts';

await runLocalStack();
