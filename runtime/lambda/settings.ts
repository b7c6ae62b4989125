// Everything each function reads from its environment, read in one place per function, so that the
// infra test can check those names against the ones the Pulumi program writes.
import { identityRules, type IdentityRules } from '../core/caller.ts';
import { readProxyConfig, type ProxyConfig } from '../core/config.ts';
import { ENV, LAMBDA_PROVIDED_ENV } from '../core/contract.ts';
import { readPublicAccess, type PublicAccess } from '../core/public-access.ts';

type Env = Record<string, string | undefined>;

export interface StoreSettings {
  tableName: string;
  region: string;
  /** Tests point the ledger at dynalite; on AWS, absent. */
  dynamodbEndpoint?: string;
  /** `host:port,…`; absent: a per-instance memory cache. */
  memcachedServers?: string;
}

/** What every function that holds the ledger reads. */
export interface FunctionSettings {
  stage: string;
  stores: StoreSettings;
}

export interface AdminSettings extends FunctionSettings {
  /** Where the daily digest is published; absent: the digest is off (the admin can only show it). */
  digest?: SnsTopicSettings;
}

export interface SnsTopicSettings {
  topicArn: string;
  region: string;
  /** Tests point Publish at a local server (the SDKs' own variable); on AWS, absent. */
  snsEndpoint?: string;
}

export interface ProxySettings extends FunctionSettings {
  /**
   * The secret with the stage's OpenAI credentials (absent: they come from the environment), and the
   * version `pulumi up` deployed with this configuration (its id changes the configuration, so a
   * rotated key replaces every warm instance).
   */
  secret?: { arn: string; region: string; versionId?: string };
  /** Without the credentials the secret holds: {@link withCredentials} adds them. */
  config: ProxyConfig;
  identity: IdentityRules;
  /** Set on the public function only: it serves browsers of these origins, unsigned (public-access.ts). */
  publicAccess?: PublicAccess;
}

const [AWS_REGION] = LAMBDA_PROVIDED_ENV;
const regionOf = (env: Env) => env[AWS_REGION] ?? 'us-east-1';
const stageOf = (env: Env) => env[ENV.stage] ?? 'dev';

export function readStoreSettings(env: Env): StoreSettings {
  const tableName = env[ENV.table];
  if (!tableName) throw new Error(`${ENV.table} is not set`);
  return {
    tableName,
    region: regionOf(env),
    dynamodbEndpoint: env[ENV.dynamodbEndpoint] || undefined,
    memcachedServers: env[ENV.memcached] || undefined,
  };
}

export function readAdminSettings(env: Env): AdminSettings {
  const topicArn = env[ENV.alertTopicArn];
  return {
    stage: stageOf(env),
    stores: readStoreSettings(env),
    ...(topicArn ? { digest: { topicArn, region: regionOf(env), snsEndpoint: env[ENV.snsEndpoint] || undefined } } : {}),
  };
}

/** Throws ConfigError (every bad value at once) or a missing table's Error. */
export function readProxySettings(env: Env): ProxySettings {
  const stage = stageOf(env);
  const arn = env[ENV.secretArn];
  return {
    stage,
    secret: arn ? { arn, region: regionOf(env), versionId: env[ENV.secretVersion] || undefined } : undefined,
    config: readProxyConfig(env, stage),
    identity: identityRules(env),
    publicAccess: readPublicAccess(env),
    stores: readStoreSettings(env),
  };
}

export interface NotifierSettings {
  stage: string;
  region: string;
  tableName: string;
  dynamodbEndpoint?: string;
  /** The stage's SNS alert topic; absent: no SNS channel. */
  topicArn?: string;
  /** The secret with the webhook URL; absent: no webhook. */
  webhookSecretArn?: string;
  /** Tests point Publish at a local server (the SDKs' own variable); on AWS, absent. */
  snsEndpoint?: string;
}

export function readNotifierSettings(env: Env): NotifierSettings {
  const tableName = env[ENV.table];
  if (!tableName) throw new Error(`${ENV.table} is not set`);
  return {
    stage: stageOf(env),
    region: regionOf(env),
    tableName,
    dynamodbEndpoint: env[ENV.dynamodbEndpoint] || undefined,
    topicArn: env[ENV.alertTopicArn] || undefined,
    webhookSecretArn: env[ENV.alertWebhookSecretArn] || undefined,
    snsEndpoint: env[ENV.snsEndpoint] || undefined,
  };
}
