// Identical requests in the same stage and project share a cache entry (users of a project share
// answers; the caller is not part of the key).

/** JSON with object keys sorted at every depth, so key order never splits the cache. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export async function cacheKey(parts: { stage: string; project: string; method: string; path: string; body: unknown }): Promise<string> {
  const text = [parts.stage, parts.project, parts.method, parts.path, canonicalJson(parts.body)].join('\n');
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
