import 'openai-wrapi/register';
import * as langchain from '@langchain/openai';
import scenario from './langchain-scenario.cjs';

console.log(JSON.stringify(await scenario({ langchain })));
