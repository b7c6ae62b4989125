/**
 * SigV4 verification cost in the local stack: median µs per verification over 10k, by body size
 * (the body is hashed on every request). Run: npx tsx bench/sigv4.ts
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { createVerifier } from '../runtime/local/sigv4.ts';

const user = { name: 'bench', accessKeyId: 'AKIABENCH00000000000', secretAccessKey: 's'.repeat(40), admin: false };
const verify = createVerifier({ lookup: () => user, region: 'us-east-1' });
const signer = new SignatureV4({ credentials: user, region: 'us-east-1', service: 'lambda', sha256: Sha256 });

for (const size of [100, 8 * 1024, 64 * 1024]) {
  const body = 'x'.repeat(size);
  const signed = await signer.sign({
    method: 'POST', protocol: 'http:', hostname: '127.0.0.1', port: 8787, path: '/dev/v1/chat/completions',
    query: {}, headers: { host: '127.0.0.1:8787', 'content-type': 'application/json' }, body,
  });
  const req = { method: 'POST', path: signed.path, query: '', headers: signed.headers, body: new TextEncoder().encode(body) };
  const times: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const t0 = process.hrtime.bigint();
    const r = await verify(req);
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
    if (!r.ok) throw new Error(r.message);
  }
  times.sort((a, b) => a - b);
  console.log(`sigv4 verify, ${size} B body: median ${times[5000].toFixed(1)} µs, p99 ${times[9900].toFixed(1)} µs`);
}
