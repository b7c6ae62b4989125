// LangChain's ChatOpenAI and OpenAIEmbeddings under register, whichever copy of `openai` LangChain
// resolves (0.x nests its own). Reports that copy's version, so the test knows what it proved.
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

function openaiVersionOf(fromFile) {
  let dir = dirname(require.resolve('openai', { paths: [dirname(fromFile)] }));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === 'openai') return pkg.version;
    } catch {}
    dir = dirname(dir);
  }
}

module.exports = async function scenario({ langchain }) {
  const model = new langchain.ChatOpenAI({ model: 'gpt-4o-mini', maxRetries: 0 });
  const answer = await model.invoke('langchain fake:words=3');
  let streamed = '';
  for await (const c of await model.stream('langchain stream fake:words=2')) streamed += c.content;
  const vectors = await new langchain.OpenAIEmbeddings({ model: 'text-embedding-3-small' }).embedDocuments(['a', 'b']);
  return { answer: answer.content, streamed, vectors: vectors.length, openai: openaiVersionOf(require.resolve('@langchain/openai')) };
};
