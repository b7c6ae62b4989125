// Starts the fake OpenAI upstream on its own: npx tsx bench/fake-openai-main.ts [--port 9999] [--api-key sk-...]
import { parseArgs } from 'node:util';
import { startFakeOpenAI } from '../runtime/local/simulated-openai.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'api-key': { type: 'string' } } });
const fake = await startFakeOpenAI({ port: Number(values.port), apiKey: values['api-key'] });
console.log(`fake OpenAI listening at ${fake.url} (api key ${fake.apiKey})`);

const stop = () => fake.close().then(() => process.exit(0));
process.on('SIGINT', stop).on('SIGTERM', stop);
