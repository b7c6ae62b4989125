const wrapi = require('openai-wrapi');
const openai = require('openai');
const scenario = require('./client-scenario.cjs');

scenario({ wrapi, openai, project: process.env.COMPAT_PROJECT, tiny: process.env.COMPAT_TINY }).then(
  (out) => console.log(JSON.stringify(out)),
  (err) => (console.error(err), process.exit(1)),
);
