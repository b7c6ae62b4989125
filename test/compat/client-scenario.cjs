// The scenario every supported `openai` runs against the local stack, from ESM and from CommonJS:
// the entry file passes the modules it imported, so both formats run the same steps. It prints one
// JSON object that the matrix test compares.
module.exports = async function scenario({ wrapi, openai, project, tiny }) {
  const out = {};
  const say = (content) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
  const failure = async (call) => {
    try {
      await call();
      return 'no error';
    } catch (e) {
      for (const name of ['RateLimitError', 'APIConnectionTimeoutError', 'APIUserAbortError', 'PermissionDeniedError', 'APIError']) {
        if (openai[name] && e instanceof openai[name]) return `${name}${e.code ? `:${e.code}` : ''}`;
      }
      return `other: ${e && e.message}`;
    }
  };

  // The drop-in: a retried 503 is signed afresh, streams, the .stream() helper, embeddings, Responses.
  const client = new wrapi.OpenAI({ project, caching: false, maxRetries: 2 });
  const { data, response } = await client.chat.completions
    .create(say('retried fake:error=503 fake:fail_times=1 fake:retry_after_ms=10 fake:words=2'))
    .withResponse();
  out.retried = data.choices[0].message.content;
  out.scope = wrapi.budgetOf(response).scope.project;
  let streamed = '';
  for await (const c of await client.chat.completions.create({ ...say('stream fake:words=3'), stream: true })) streamed += c.choices[0]?.delta?.content ?? '';
  out.streamed = streamed;
  // The helper lives on chat.completions from openai 5, on beta.chat.completions in 4.x (not 4.0).
  const completions = typeof client.chat.completions.stream === 'function' ? client.chat.completions : client.beta?.chat?.completions;
  out.helper = typeof completions?.stream === 'function' ? await completions.stream(say('helper fake:words=4')).finalContent() : 'absent';
  out.embeddings = (await client.embeddings.create({ model: 'text-embedding-3-small', input: 'embed me' })).data.length;
  out.responses = client.responses ? (await client.responses.create({ model: 'gpt-4o-mini', input: 'responses fake:words=2' })).output_text : 'absent';

  // register: a plain client of the same copy goes through the proxy too.
  out.plain = (await new openai.OpenAI({ maxRetries: 0 }).chat.completions.create(say('plain fake:words=2'))).choices[0].message.content;

  // The signing fetch, for clients that are not `openai`.
  const signed = wrapi.createFetch({ project, caching: false });
  const res = await signed(`${wrapi.proxyBaseURL()}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(say('fetch fake:words=2')),
  });
  out.fetch = (await res.json()).choices[0].message.content;

  // Refusals and failures arrive as the openai package's own typed errors.
  out.budget = await failure(() => new wrapi.OpenAI({ project: tiny, maxRetries: 0 }).chat.completions.create(say('too dear')));
  out.rateLimited = await failure(() => new wrapi.OpenAI({ project, maxRetries: 0 }).chat.completions.create(say('busy fake:error=429')));
  out.timeout = await failure(() =>
    new wrapi.OpenAI({ project, maxRetries: 0, timeout: 300 }).chat.completions.create(say('slow fake:delay_first=1500 fake:words=1')),
  );
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  out.aborted = await failure(() =>
    client.chat.completions.create(say('aborted fake:delay_first=1500 fake:words=1'), { signal: controller.signal }),
  );
  return out;
};
