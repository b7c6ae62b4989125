/**
 * The local stack's users, kept in a standard AWS shared-credentials file (`<home>/credentials`).
 *
 * Each user is one profile: `aws_access_key_id`, `aws_secret_access_key` and our own
 * `openai_wrapi_admin = true|false`. AWS SDKs ignore unknown keys, so the very same file works as
 * `AWS_SHARED_CREDENTIALS_FILE` for clients: the local stack and its callers share one secret store.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LocalUser {
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
  admin: boolean;
}

const ADMIN_KEY = 'openai_wrapi_admin';
const DEFAULT_ACCOUNT_ID = '000000000000';

/** IAM user-name rules: letters, digits and `+=,.@_-`, 1 to 64 characters. */
const USER_NAME = /^[\w+=,.@-]{1,64}$/;

const HEADER = `# openai-wrapi local stack users (a standard AWS shared-credentials file).
# Point AWS_SHARED_CREDENTIALS_FILE here and pick a user with AWS_PROFILE.
# Add users with: openai-wrapi local users add NAME [--admin]
`;

/**
 * Parses INI profiles the way the AWS SDK's loader does (`#`/`;` comments, also after whitespace
 * at the end of a line; `key = value`). Profiles without both keys are not users and are skipped.
 */
export function parseCredentials(text: string): LocalUser[] {
  const sections: { name: string; keys: Map<string, string> }[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.split(/(?:^|\s)[;#]/)[0].trim();
    if (line.startsWith('[') && line.endsWith(']')) {
      sections.push({ name: line.slice(1, -1).trim(), keys: new Map() });
      continue;
    }
    const eq = line.indexOf('=');
    const section = sections.at(-1);
    if (section && eq > 0) section.keys.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const users: LocalUser[] = [];
  for (const { name, keys } of sections) {
    const accessKeyId = keys.get('aws_access_key_id');
    const secretAccessKey = keys.get('aws_secret_access_key');
    if (!accessKeyId || !secretAccessKey) continue;
    const admin = (keys.get(ADMIN_KEY) ?? '').toLowerCase() === 'true';
    users.push({ name, accessKeyId, secretAccessKey, admin });
  }
  return users;
}

export function formatCredentials(users: readonly LocalUser[]): string {
  return users
    .map(
      (u) =>
        `[${u.name}]\naws_access_key_id = ${u.accessKeyId}\n` +
        `aws_secret_access_key = ${u.secretAccessKey}\n${ADMIN_KEY} = ${u.admin}\n`,
    )
    .join('\n');
}

export function userArn(name: string, accountId = DEFAULT_ACCOUNT_ID): string {
  return `arn:aws:iam::${accountId}:user/${name}`;
}

/** A lookup by access key id, for `createVerifier`. */
export function lookupByAccessKey(users: readonly LocalUser[]): (accessKeyId: string) => LocalUser | undefined {
  const byKey = new Map(users.map((u) => [u.accessKeyId, u]));
  return (accessKeyId) => byKey.get(accessKeyId);
}

/** Loads `<home>/credentials`, creating it with a `[default]` admin on first start. */
export async function loadOrCreateCredentials(
  home: string,
): Promise<{ file: string; users: LocalUser[]; created: boolean }> {
  const file = join(home, 'credentials');
  await mkdir(home, { recursive: true, mode: 0o700 });
  const text = await readIfExists(file);
  if (text !== undefined) return { file, users: parseCredentials(text), created: false };

  const users = [newUser('default', true)];
  try {
    // `wx`: if another process created the file meanwhile, keep theirs rather than clobbering it.
    await writeFile(file, HEADER + '\n' + formatCredentials(users), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { file, users: parseCredentials(await readFile(file, 'utf8')), created: false };
  }
  await chmod(file, 0o600); // the mode given to writeFile is subject to the umask
  return { file, users, created: true };
}

/** What is wrong with a user name, if anything (the CLI checks before it touches the file). */
export function userNameProblem(name: string): string | undefined {
  if (!USER_NAME.test(name)) return 'use 1-64 letters, digits or + = , . @ _ -';
  // The AWS SDK refuses to read a file that has this profile at all.
  if (name === '__proto__') return 'it is reserved';
  return undefined;
}

/** Adds a user with fresh keys. The file is appended to, so comments and unknown keys survive. */
export async function addUser(home: string, name: string, admin: boolean): Promise<LocalUser> {
  const problem = userNameProblem(name);
  if (problem) throw new Error(`Invalid user name ${JSON.stringify(name)}: ${problem}`);

  const { file, users } = await loadOrCreateCredentials(home);
  // IAM user names are unique regardless of case.
  if (users.some((u) => u.name.toLowerCase() === name.toLowerCase())) {
    throw new Error(`User "${name}" already exists in ${file}`);
  }
  const user = newUser(name, admin);
  const text = (await readFile(file, 'utf8')).replace(/\n*$/, '\n');
  await writeAtomically(file, `${text}\n${formatCredentials([user])}`);
  return user;
}

function newUser(name: string, admin: boolean): LocalUser {
  return { name, accessKeyId: newAccessKeyId(), secretAccessKey: newSecretAccessKey(), admin };
}

/** `AKIA` + 16 chars of the base32 alphabet, shaped like a real IAM access key id. */
function newAccessKeyId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  return 'AKIA' + [...randomBytes(16)].map((b) => alphabet[b & 31]).join('');
}

/** 40 base64 characters (30 random bytes), like an IAM secret access key. */
function newSecretAccessKey(): string {
  return randomBytes(30).toString('base64');
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write-then-rename, so a crash or a concurrent reader never sees half a file. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
