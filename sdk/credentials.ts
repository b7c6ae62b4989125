// AWS credentials for signing: given ones, or the standard chain (env, shared files, SSO, process,
// web identity, container and instance roles), loaded lazily and shared per profile so every client
// reuses one refreshing provider.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { WrapiConfigError } from './errors.ts';

/** AWS credentials, as the AWS SDK shapes them. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** Anything that returns credentials; the AWS SDK's providers (`fromIni()`, ...) fit. */
export type CredentialsProvider = () => Promise<AwsCredentials>;

export interface CredentialOptions {
  /** Static credentials or a provider. Default: the standard AWS chain. */
  credentials?: AwsCredentials | CredentialsProvider;
  /** A profile of the shared AWS files for the standard chain. Default: `AWS_PROFILE`. */
  profile?: string;
  /**
   * The local stack's credentials file (from its outputs). When set, and no credentials are
   * given, keys come from this file (profile as above, else `default`), not the AWS chain.
   */
  credentialsFile?: string;
}

const KEY = Symbol.for('openai-wrapi.credential-providers');
const chains: Map<string, CredentialsProvider> = ((globalThis as Record<symbol, unknown>)[KEY] as Map<string, CredentialsProvider>) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = new Map<string, CredentialsProvider>());

/** The provider for these options; errors become a {@link WrapiConfigError} saying what to set. */
export function credentialsProvider(opts: CredentialOptions = {}): CredentialsProvider {
  const given = opts.credentials;
  if (given && typeof given !== 'function') {
    if (!given.accessKeyId || !given.secretAccessKey) {
      throw new WrapiConfigError('The credentials option needs both accessKeyId and secretAccessKey.');
    }
    return async () => given;
  }
  if (given) return explain(given, 'the credentials option');
  const profile = opts.profile ?? process.env.AWS_PROFILE ?? '';
  const file = opts.credentialsFile;
  const key = `${profile}\u0000${file ?? ''}`;
  let chain = chains.get(key);
  if (!chain) {
    let loaded: Promise<CredentialsProvider> | undefined;
    const load = () =>
      (loaded ??= file
        ? import('@aws-sdk/credential-provider-ini').then(({ fromIni }) =>
            fromIni({ profile: profile || 'default', filepath: file, ignoreCache: true }),
          )
        : import('@aws-sdk/credential-provider-node').then(({ defaultProvider }) => defaultProvider(profile ? { profile } : {})));
    const what = file
      ? `AWS profile "${profile || 'default'}" in the local stack's ${file} (add users with: openai-wrapi local users add NAME)`
      : profile ? `AWS profile "${profile}"` : 'the standard AWS credential chain';
    // The chain memoizes and refreshes expiring credentials itself.
    chain = explain(async () => (await load())(), what);
    chains.set(key, chain);
  }
  return chain;
}

const EXPLAINED = Symbol('openai-wrapi.explained');

function explain(provider: CredentialsProvider, what: string): CredentialsProvider {
  if (EXPLAINED in provider) return provider;
  const explained = async () => {
    let creds: AwsCredentials;
    try {
      creds = await provider();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new WrapiConfigError(
        `No AWS credentials from ${what} (${reason}). Configure AWS as usual (AWS_PROFILE, AWS_ACCESS_KEY_ID and ` +
          'AWS_SECRET_ACCESS_KEY, aws sso login, or a role); for the local stack use AWS_SHARED_CREDENTIALS_FILE=<home>/credentials ' +
          'with AWS_PROFILE=<user>.',
        { cause: err },
      );
    }
    if (!creds?.accessKeyId || !creds.secretAccessKey) throw new WrapiConfigError(`${what} returned no access key.`);
    return creds;
  };
  return Object.assign(explained, { [EXPLAINED]: true });
}

/**
 * SHA-256 and HMAC-SHA-256 for @smithy/signature-v4, on node:crypto (the signer's `sha256` option
 * takes a constructor; with a secret it must be an HMAC).
 */
export class NodeSha256 {
  private readonly hash: Hash | Hmac;

  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBytes(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function toBytes(data: string | ArrayBuffer | ArrayBufferView): Uint8Array | string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
