import * as wrapi from 'openai-wrapi';
import * as openai from 'openai';
import scenario from './client-scenario.cjs';

console.log(JSON.stringify(await scenario({ wrapi, openai, project: process.env.COMPAT_PROJECT, tiny: process.env.COMPAT_TINY })));
