require('openai-wrapi/register');
const langchain = require('@langchain/openai');
const scenario = require('./langchain-scenario.cjs');

scenario({ langchain }).then((out) => console.log(JSON.stringify(out)), (err) => (console.error(err), process.exit(1)));
