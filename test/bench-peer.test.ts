// The bench's `--peer` plumbing that needs no peer installed: argument parsing, the pass-through
// floor, the order in which the sides of a comparison take turns, and the table with and without the
// peer's columns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareSides, roundOrder } from '../bench/load.ts';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEERS, ensureInstalled, parseBenchArgs, startPeer } from '../bench/peer.ts';
import { peerLatency, peerVerdict, tableLines, type Row } from '../bench/table.ts';

const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bench');

test('--peer takes a known peer, in either spelling; no flag means no peer', () => {
  assert.equal(parseBenchArgs([]), { peer: undefined });
  assert.equal(parseBenchArgs(['--peer', 'portkey']), { peer: 'portkey' });
  assert.equal(parseBenchArgs(['--peer=Portkey']), { peer: 'portkey' });
});

test('an unknown peer, a missing name or an unknown option is refused with what would work', () => {
  assert.throws(() => parseBenchArgs(['--peer', 'litellm']), /unknown peer 'litellm': known peers are portkey, passthrough/);
  assert.throws(() => parseBenchArgs(['--peer']), /Usage: npm run bench \[-- --peer portkey\|passthrough\]/);
  assert.throws(() => parseBenchArgs(['--peers', 'portkey']), /Usage/);
  assert.throws(() => parseBenchArgs(['--peer', 'constructor']), /unknown peer/);
});

test('Portkey is pinned and pointed at the given upstream as an OpenAI provider', () => {
  const p = PEERS.portkey;
  assert.equal(p.dependencies, { '@portkey-ai/gateway': '1.15.2' });
  assert.equal(p.overrides, { '@hono/node-server': '1.14.1' });
  assert.equal(p.headers('http://127.0.0.1:9/v1', 'sk-x'), {
    authorization: 'Bearer sk-x',
    'x-portkey-provider': 'openai',
    'x-portkey-custom-host': 'http://127.0.0.1:9/v1',
  });
});

test('the pass-through is a floor in bench/, nothing to install, and its verdicts are information', () => {
  const p = PEERS.passthrough;
  assert.equal(p.dependencies, {});
  assert.is(ensureInstalled('passthrough', () => assert.unreachable('nothing to install')), BENCH_DIR);
  assert.ok(existsSync(path.join(BENCH_DIR, p.entry)));
  assert.equal(p.headers('http://127.0.0.1:9/v1', 'sk-x'), { authorization: 'Bearer sk-x', 'x-passthrough-upstream': 'http://127.0.0.1:9/v1' });
  assert.is(PEERS.portkey.judged, true);
  assert.is(peerVerdict(PEERS.portkey, false, "(added < Portkey's)"), "FAIL (added < Portkey's)");
  assert.is(peerVerdict(p, false, "(added < Pass-through's)"), "(info: not added < Pass-through's; a floor, not a target)");
});

test('the pass-through forwards to the base URL in its header and pipes the answer back untouched', async () => {
  const upstream = http.createServer((req, res) => {
    res.writeHead(201, { 'content-type': 'application/json', 'x-seen-path': req.url ?? '' });
    req.pipe(res);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  const floor = await startPeer('passthrough', BENCH_DIR, base, 'sk-x');
  try {
    const res = await fetch(`http://${floor.host}:${floor.port}${floor.chatPath}`, { method: 'POST', headers: floor.headers, body: '{"a":1}' });
    assert.is(res.status, 201);
    assert.is(res.headers.get('x-seen-path'), '/v1/chat/completions');
    assert.is(await res.text(), '{"a":1}');
    const refused = await fetch(`http://${floor.host}:${floor.port}${floor.chatPath}`, { method: 'POST', body: '{}' });
    assert.is(refused.status, 400);
  } finally {
    await floor.child.stop();
    upstream.close();
  }
});

test('two sides alternate as before; three sides run every order equally often', () => {
  assert.equal([0, 1, 2, 3].map((b) => roundOrder(2, b)), [[0, 1], [1, 0], [0, 1], [1, 0]]);
  const six = [0, 1, 2, 3, 4, 5].map((b) => roundOrder(3, b).join(''));
  assert.equal(new Set(six).size, 6);
  for (const side of [0, 1, 2]) {
    for (const place of [0, 1, 2]) assert.is(six.filter((o) => o[place] === String(side)).length, 2);
  }
});

test('compareSides gives every side the same count of calls, indices and batches', async () => {
  const seen: string[] = [];
  const side = (name: string) => async (i: number) => {
    seen.push(name);
    return i;
  };
  const [a, b, c] = await compareSides(12, 4, 2, [side('a'), side('b'), side('c')]);
  for (const s of [a, b, c]) assert.equal([...s.samples].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  // Batches of 4, in round orders abc, bca, cab.
  assert.is(seen.join(''), 'aaaabbbbccccbbbbccccaaaaccccaaaabbbb');
});

const rows: Row[] = [
  { cells: ['c=1 p50', '1.000 ms', '1.500 ms', '+0.500 ms', '1.50x', 'PASS'], peer: peerLatency(1, 1.5, 3) },
  { cells: ['signing', '', '0.200 ms', '', '', '(info)'] },
];

test('without a peer the table keeps its six columns', () => {
  const [title, head, rule, first, second] = tableLines('T', rows);
  assert.is(title, 'T');
  assert.equal(head.split(/\s{2,}/), ['case', 'direct', 'proxy', 'added', 'proxy/direct', 'target']);
  assert.is(rule.split('  ').length, 6);
  assert.equal(first.split(/\s{2,}/), ['c=1 p50', '1.000 ms', '1.500 ms', '+0.500 ms', '1.50x', 'PASS']);
  assert.equal(second.split(/\s{2,}/), ['signing', '0.200 ms', '(info)']);
});

test('with a peer its value, added time and ratios sit beside the stack, each under its heading', () => {
  const [, head, rule, first, second] = tableLines('T', rows, 'Portkey');
  const heads = head.split(/\s{2,}/);
  assert.equal(heads, ['case', 'direct', 'Portkey', 'openai-wrapi', 'Portkey added', 'wrapi added', 'Portkey/direct', 'wrapi/direct', 'wrapi/Portkey', 'target']);
  assert.is(rule.split('  ').length, 10);
  // Each cell ends where its heading ends (right-aligned), except the first and the last column.
  const ends = (line: string, cell: string) => line.indexOf(cell) + cell.length;
  const expect: [string, string][] = [
    ['direct', '1.000 ms'], ['Portkey', '3.000 ms'], ['openai-wrapi', '1.500 ms'], ['Portkey added', '+2.000 ms'],
    ['wrapi added', '+0.500 ms'], ['Portkey/direct', '3.00x'], ['wrapi/direct', '1.50x'], ['wrapi/Portkey', '0.50x'],
  ];
  for (const [heading, cell] of expect) assert.is(ends(first, cell), ends(head, heading), heading);
  assert.is(ends(second, '0.200 ms'), ends(head, 'openai-wrapi'));
  assert.ok(first.endsWith('PASS'));
});

test.run();
