// The floor of a Node proxy on this machine, for `npm run bench -- --peer passthrough`: a node:http
// server that forwards each request to the base URL in its `x-passthrough-upstream` header over a
// keep-alive agent and pipes the answer back, bytes untouched. No auth, no parsing, no ledger: what
// any gateway written on Node pays for the extra hop and nothing more. Started by bench/peer.ts with
// bench/peer-probe.mjs preloaded (loopback, port report, memory and CPU answers).
import http from 'node:http';

const UPSTREAM_HEADER = 'x-passthrough-upstream';
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' });

const server = http.createServer((req, res) => {
  let base;
  try {
    base = new URL(req.headers[UPSTREAM_HEADER]);
  } catch {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`the ${UPSTREAM_HEADER} header must be a base URL`);
    return;
  }
  const headers = { ...req.headers, host: base.host };
  delete headers[UPSTREAM_HEADER];
  const up = http.request(
    { hostname: base.hostname, port: base.port, method: req.method, path: base.pathname + req.url.replace(/^\/v1/, ''), headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});

server.listen(Number(process.argv[2] ?? 0));
