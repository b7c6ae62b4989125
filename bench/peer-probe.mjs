// Preloaded (node --import) into a peer gateway that bench/proxy.ts forks, so the peer is measured
// exactly like the stack child (bench/stack-main.ts): memory after a forced GC and process CPU time,
// asked for over the IPC channel. It also keeps the peer on loopback and reports its port once it
// listens. Plain JavaScript on purpose: no TypeScript loader inside the process being measured.
import net from 'node:net';

if (!process.send) {
  console.error('bench/peer-probe.mjs must be preloaded into a process forked by bench/proxy.ts');
  process.exit(2);
}

// The peer binds every interface on its own; the bench never exposes it beyond this machine.
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  this.once('listening', () => {
    const address = this.address();
    if (address && typeof address === 'object') process.send({ ready: true, url: `http://127.0.0.1:${address.port}` });
  });
  return listen.apply(this, args);
};

const answer = {
  memory() {
    globalThis.gc?.();
    const m = process.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
  },
  counts() {
    const cpu = process.cpuUsage();
    return { cpuUs: cpu.user + cpu.system };
  },
  stop() {
    setImmediate(() => process.exit(0));
    return true;
  },
};

process.on('message', (m) => {
  const handler = answer[m?.cmd];
  if (!handler) return process.send({ id: m?.id, ok: false, error: `unknown command ${m?.cmd}` });
  process.send({ id: m.id, ok: true, value: handler() });
});
// The bench going away (even killed) must not leave the peer running.
process.on('disconnect', () => process.exit(0));
