// The AI SDK's OpenAI provider with the signing fetch: chat (whole and streamed) and embeddings.
import { createFetch, proxyBaseURL } from 'openai-wrapi';
import { createOpenAI } from '@ai-sdk/openai';
import { embed, generateText, streamText } from 'ai';

const openai = createOpenAI({ baseURL: proxyBaseURL(), apiKey: 'unused', fetch: createFetch({ project: process.env.COMPAT_PROJECT, caching: false }) });
const whole = await generateText({ model: openai.chat('gpt-4o-mini'), prompt: 'ai sdk fake:words=2', maxRetries: 0 });
let streamed = '';
for await (const part of streamText({ model: openai.chat('gpt-4o-mini'), prompt: 'ai sdk stream fake:words=3', maxRetries: 0 }).textStream) streamed += part;
const { embedding } = await embed({ model: openai.embedding('text-embedding-3-small'), value: 'ai sdk', maxRetries: 0 });
console.log(JSON.stringify({ text: whole.text, streamed, embedding: embedding.length > 0 }));
