// `<home>/outputs.json`: per stage the output names the Pulumi stacks export, plus the local
// endpoint, so the SDK and the CLI find the local stack the way they find a deployed one.
import { rename, writeFile } from 'node:fs/promises';
import { adminFunctionName, ledgerTableName, proxyFunctionName } from '../core/contract.ts';

export interface LocalOutputs {
  url: string;
  region: string;
  credentialsFile: string;
  stages: readonly string[];
  /** Demo mode: the upstream is the simulated OpenAI. */
  simulatedUpstream?: boolean;
}

export function localOutputs({ url, region, credentialsFile, stages, simulatedUpstream }: LocalOutputs): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  for (const stage of stages) {
    outputs[stage] = {
      proxyUrl: `${url}/${stage}/`,
      proxyFunctionName: proxyFunctionName(stage),
      adminFunctionName: adminFunctionName(stage),
      region,
      tableName: ledgerTableName(stage),
      cacheEndpoint: null,
      lambdaEndpoint: url,
      // The only keys this stack accepts: the SDK and CLI sign with them when they target it.
      credentialsFile,
      local: true,
      ...(simulatedUpstream ? { simulatedUpstream: true } : {}),
    };
  }
  return outputs;
}

/** Written whole or not at all (write, then rename): a reader never sees half a file. */
export async function writeOutputs(file: string, outputs: LocalOutputs): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(localOutputs(outputs), null, 2) + '\n');
  await rename(tmp, file);
}
