// Runs the Pulumi program (index.ts) under Pulumi's unit-test mocks: no CLI, no cloud. Each run sets
// its own stack config and imports a fresh instance of the program (a new query string is a new
// module URL; @pulumi/* stay shared, so the mocks apply), then returns every resource it registered
// with its inputs, and its stack outputs with their secretness.
// https://www.pulumi.com/docs/iac/guides/testing/unit/
import { createHash } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';

export const PROJECT = 'openai-wrapi';
export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-2';
export const ZONES = ['eu-west-2a', 'eu-west-2b', 'eu-west-2c'];

/** The secrets a stack is configured with in tests: they must never appear outside the secret. */
export const OPENAI_API_KEY = 'sk-test-5ecret-key-0123456789';
export const OPENAI_ORG_ID = 'org-test-5ecret-org';

/** A minimal valid dev stack, as `pulumi config set [--secret]` would leave it. */
export const BASE_CONFIG: Record<string, string> = {
  stage: 'dev',
  openaiApiKey: OPENAI_API_KEY,
  openaiOrgId: OPENAI_ORG_ID,
};
export const SECRET_KEYS = ['openaiApiKey', 'openaiOrgId'];

export interface Registered {
  type: string;
  name: string;
  id: string;
  /**
   * What the program passed, as the engine receives it: a secret value stays wrapped in Pulumi's secret
   * marker (see isSecretValue), so tests can tell what would be encrypted in the state.
   */
  inputs: Record<string, any>;
  /** What the mock "cloud" answered: inputs plus computed attributes (arn, urls, …). */
  state: Record<string, any>;
  /**
   * Logical names of the resources this one depends on, as the engine is told (explicit dependsOn and
   * resources its inputs refer to): what `pulumi destroy` deletes after this one.
   */
  dependsOn: string[];
}

export interface StackOutput {
  value: unknown;
  secret: boolean;
}

export interface ProgramRun {
  resources: Registered[];
  outputs: Record<string, StackOutput>;
  ofType(type: string): Registered[];
  /** The single resource of `type` (whose logical name ends with `suffix`, if given); throws otherwise. */
  one(type: string, suffix?: string): Registered;
  byId(id: string): Registered | undefined;
}

export interface RunOptions {
  /** Config keys set with --secret (default: SECRET_KEYS). */
  secretKeys?: string[];
  /** The program to run (default: this repository's index.ts). */
  program?: URL;
}

const DEFAULT_PROGRAM = new URL('../../index.ts', import.meta.url);
let runs = 0;

/** A config value: structured ones (lists, objects such as `publicAccess`) are kept as JSON text. */
export type ConfigValue = string | number | boolean | string[] | Record<string, unknown>;

/** Runs the program with `config` (keys without the project prefix) on top of nothing else. */
export async function runProgram(config: Record<string, ConfigValue>, opts: RunOptions = {}): Promise<ProgramRun> {
  const resources: Registered[] = [];
  // Pulumi keeps structured values (lists, objects) as JSON text, as `pulumi config set --path` writes them.
  const text = (v: unknown) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  const full = Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(':') ? k : `${PROJECT}:${k}`, text(v)]));
  const secretKeys = (opts.secretKeys ?? SECRET_KEYS).map((k) => `${PROJECT}:${k}`);
  pulumi.runtime.setAllConfig(full, secretKeys);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const id = `${args.type.split(':').pop()!.toLowerCase()}-${args.name}`; // unique per type and name
        const state = { ...args.inputs, ...computed(args.type, args.name, id, args.inputs) };
        resources.push({ type: args.type, name: args.name, id, inputs: args.inputs, state, dependsOn: dependencies.get(args.name) ?? [] });
        return { id, state };
      },
      call(args) {
        return invoke(args.token);
      },
    },
    PROJECT,
    'dev',
    false,
  );
  // The mocks are not told a resource's dependencies; the monitor's requests carry them (as URNs).
  const dependencies = new Map<string, string[]>();
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: any, callback: unknown): unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    const names = (req.getDependenciesList() as string[]).map((urn) => urn.slice(urn.lastIndexOf('::') + 2));
    dependencies.set(req.getName(), [...new Set(names)]);
    return register(req, callback);
  };

  const program = new URL(opts.program ?? DEFAULT_PROGRAM);
  program.searchParams.set('run', String(++runs));
  const module = (await import(program.href)) as Record<string, unknown>;
  const outputs: Record<string, StackOutput> = {};
  for (const [name, exported] of Object.entries(module)) {
    if (pulumi.Output.isInstance(exported)) {
      outputs[name] = { value: await valueOf(exported), secret: await pulumi.isSecret(exported) };
    } else {
      outputs[name] = { value: exported, secret: false };
    }
  }
  // Registrations whose inputs wait on other resources finish after the exports resolve.
  await pulumi.runtime.disconnect();

  return {
    resources,
    outputs,
    ofType: (type) => resources.filter((r) => r.type === type),
    one(type, suffix) {
      const found = resources.filter((r) => r.type === type && (suffix === undefined || r.name.endsWith(suffix)));
      if (found.length !== 1) throw new Error(`expected one ${type}${suffix ? ` named *${suffix}` : ''}, found ${found.length}`);
      return found[0];
    },
    byId: (id) => resources.find((r) => r.id === id),
  };
}

/** Pulumi's wire marker for a secret value: `{ [SECRET_SIG]: SECRET_VALUE_SIG, value }`. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const SECRET_VALUE_SIG = '1b47061264138c4ac30d75fd1eb44270';

export function isSecretValue(x: unknown): x is { value: unknown } {
  return typeof x === 'object' && x !== null && (x as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE_SIG;
}

/** True when a secret marker appears anywhere inside `x`. */
export function containsSecret(x: unknown): boolean {
  if (isSecretValue(x)) return true;
  if (Array.isArray(x)) return x.some(containsSecret);
  return typeof x === 'object' && x !== null && Object.values(x).some(containsSecret);
}

const valueOf = <T>(output: pulumi.Output<T>) => new Promise<T>((resolve) => output.apply(resolve));

/** Attributes AWS would compute, in the shapes the provider returns. */
function computed(type: string, name: string, id: string, inputs: Record<string, any>): Record<string, unknown> {
  const arn = (service: string, resource: string, region = REGION) => `arn:aws:${service}:${region}:${ACCOUNT}:${resource}`;
  const physical = inputs.name ?? `${name}-1a2b3c4`; // Pulumi's auto-naming adds a random suffix
  switch (type) {
    case 'aws:lambda/function:Function':
      return { arn: arn('lambda', `function:${physical}`), name: physical };
    case 'aws:lambda/functionUrl:FunctionUrl':
      return { functionUrl: `https://${id}.lambda-url.${REGION}.on.aws/`, urlId: id };
    case 'aws:dynamodb/table:Table':
      return {
        arn: arn('dynamodb', `table/${physical}`),
        name: physical,
        ...(inputs.streamEnabled ? { streamArn: arn('dynamodb', `table/${physical}/stream/2026-11-01T00:00:00.000`), streamLabel: '2026-11-01T00:00:00.000' } : {}),
      };
    case 'aws:sqs/queue:Queue':
      return { arn: arn('sqs', physical), name: physical, url: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${physical}` };
    case 'aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration':
      return { chatConfigurationArn: `arn:aws:chatbot::${ACCOUNT}:chat-configuration/slack-channel/${inputs.configurationName}` };
    case 'aws:secretsmanager/secret:Secret':
      return { arn: arn('secretsmanager', `secret:${physical}-AbCdEf`), name: physical };
    case 'aws:secretsmanager/secretVersion:SecretVersion': {
      // Secrets Manager gives each new value a new version id: here one derived from the value.
      const hex = createHash('sha256').update(JSON.stringify(inputs.secretString)).digest('hex');
      return { versionId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}` };
    }
    case 'aws:cloudwatch/logGroup:LogGroup':
      return { arn: arn('logs', `log-group:${physical}`), name: physical };
    case 'aws:iam/role:Role':
      return { arn: arn('iam', `role/${physical}`, ''), name: physical };
    case 'aws:iam/policy:Policy':
      return { arn: arn('iam', `policy/${physical}`, ''), name: physical };
    case 'aws:sns/topic:Topic':
      return { arn: arn('sns', physical), name: physical };
    case 'aws:scheduler/scheduleGroup:ScheduleGroup':
      return { arn: arn('scheduler', `schedule-group/${physical}`), name: physical };
    case 'aws:scheduler/schedule:Schedule':
      return { arn: arn('scheduler', `schedule/${inputs.groupName ?? 'default'}/${physical}`), name: physical };
    case 'aws:cloudwatch/metricAlarm:MetricAlarm':
      return { arn: arn('cloudwatch', `alarm:${physical}`) };
    case 'aws:ec2/vpc:Vpc':
      return { arn: arn('ec2', `vpc/${id}`) };
    case 'aws:ec2/subnet:Subnet':
      return { arn: arn('ec2', `subnet/${id}`) };
    case 'aws:ec2/securityGroup:SecurityGroup':
      return { arn: arn('ec2', `security-group/${id}`) };
    case 'aws:elasticache/subnetGroup:SubnetGroup':
      return { name: physical };
    case 'aws:elasticache/cluster:Cluster':
      return {
        arn: arn('elasticache', `cluster:${inputs.clusterId}`),
        clusterAddress: `${inputs.clusterId}.abc123.cfg.euw2.cache.amazonaws.com`,
        configurationEndpoint: `${inputs.clusterId}.abc123.cfg.euw2.cache.amazonaws.com:11211`,
        cacheNodes: Array.from({ length: inputs.numCacheNodes ?? 1 }, (_, i) => ({
          id: `000${i + 1}`,
          address: `${inputs.clusterId}.abc123.000${i + 1}.euw2.cache.amazonaws.com`,
          port: inputs.port ?? 11211,
          availabilityZone: ZONES[0],
        })),
      };
    default:
      return {};
  }
}

/** The data sources the program reads. */
function invoke(token: string): Record<string, unknown> {
  switch (token) {
    case 'aws:index/getRegion:getRegion':
      return { region: REGION, name: REGION, id: REGION, description: 'Europe (London)', endpoint: `ec2.${REGION}.amazonaws.com` };
    case 'aws:index/getCallerIdentity:getCallerIdentity':
      return { accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/deployer`, userId: 'AIDAEXAMPLE', id: ACCOUNT };
    case 'aws:index/getPartition:getPartition':
      return { partition: 'aws', dnsSuffix: 'amazonaws.com', reverseDnsPrefix: 'com.amazonaws', id: 'aws' };
    case 'aws:index/getAvailabilityZones:getAvailabilityZones':
      return { names: ZONES, zoneIds: ZONES.map((_, i) => `euw2-az${i + 1}`), groupNames: [REGION], id: REGION };
    default:
      throw new Error(`the program invoked ${token}, which the mocks do not answer`);
  }
}

/** The inline archive (an AssetArchive of StringAssets) a function was given: file name → text. */
export async function archiveFiles(code: any): Promise<Record<string, string>> {
  const assets: Record<string, { text: Promise<string> | string }> = await code.assets;
  const files: Record<string, string> = {};
  for (const [name, asset] of Object.entries(assets)) files[name] = await asset.text;
  return files;
}

/** A sorted copy, for comparing name lists. */
export const sorted = (xs: string[]) => [...xs].sort();

/** A function's environment variables as the program wrote them. */
export const envOf = (fn: Registered): Record<string, string> => fn.inputs.environment?.variables ?? {};

/** An IAM policy statement as the program writes it (a single action or resource may be a string). */
export interface Stmt {
  Sid: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: unknown;
}

/** A statement's action or resource as a list. */
export const list = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
