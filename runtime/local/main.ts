// `npm start`: the local stack on 127.0.0.1:${PORT:-8787}, until Ctrl-C.
import { startLocalStack } from './stack.ts';
import type { Logger } from '../core/ports.ts';

const consoleLogger: Logger = {
  info(message, fields) {
    if (message !== 'call' || !fields) return console.log(message, fields ?? '');
    const f = fields as Record<string, unknown>;
    const cost = typeof f.cost === 'number' ? `$${(f.cost / 1e9).toFixed(6)}` : '';
    console.log(`[${f.stage}] ${f.route} ${f.user} project=${f.project} model=${f.model} ${f.status ?? ''} ${cost} ${f.cache}${f.estimated ? ' (estimated)' : ''}`);
  },
  error: (message, fields) => console.error(message, fields ?? ''),
};

try {
  const stack = await startLocalStack({ log: consoleLogger });
  console.log(`openai-wrapi local stack on ${stack.url}`);
  console.log(`  data:        ${stack.home}`);
  console.log(`  credentials: ${stack.credentialsFile} (profile "default" is an admin)`);
  console.log(`  outputs:     ${stack.outputsFile}`);
  console.log(`  dashboard:   ${stack.dashboardUrl}  (the link carries a secret token; it changes at every start)`);
  for (const s of Object.values(stack.stages)) {
    console.log(`  ${s.stage}: proxy ${stack.url}/${s.stage}/  upstream ${s.config.upstreamUrl}  (${s.stores})`);
  }
  for (const w of stack.warnings) console.log(`  ! ${w}`);
  const stop = async () => {
    await stack.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (err) {
  console.error(`openai-wrapi: could not start the local stack: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
