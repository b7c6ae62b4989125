// The local stack's users as the verifier sees them: looked up by access key id, from
// `<home>/credentials`. `openai-wrapi local users add` edits that file while the stack runs, so an
// unknown key re-reads it when it changed since the last read (one read at a time, shared by the
// requests waiting on it).
import { stat } from 'node:fs/promises';
import { loadOrCreateCredentials, lookupByAccessKey, type LocalUser } from './credentials.ts';

export interface UserDirectory {
  /** The credentials file. */
  file: string;
  /** The users as last read. */
  list(): readonly LocalUser[];
  /** The user with this access key id, re-reading the file first if the key is unknown. */
  find(accessKeyId: string): Promise<LocalUser | undefined>;
}

/** Reads `<home>/credentials`, creating it with a `[default]` admin on first start. */
export async function openUserDirectory(home: string): Promise<UserDirectory> {
  const creds = await loadOrCreateCredentials(home);
  let users = creds.users;
  let lookup = lookupByAccessKey(users);
  let loadedAt = 0;
  let reloading: Promise<void> | undefined;

  const reload = async () => {
    const mtime = (await stat(creds.file).catch(() => undefined))?.mtimeMs ?? 0;
    if (mtime === loadedAt) return;
    users = (await loadOrCreateCredentials(home)).users;
    lookup = lookupByAccessKey(users);
    loadedAt = mtime;
  };

  return {
    file: creds.file,
    list: () => users,
    async find(accessKeyId) {
      const known = lookup(accessKeyId);
      if (known) return known;
      reloading ??= reload().finally(() => (reloading = undefined));
      await reloading;
      return lookup(accessKeyId);
    },
  };
}
