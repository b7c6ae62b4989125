// Spawns a real `memcached` for tests: 127.0.0.1 only, a free port (or a given one, to restart a
// killed server where clients expect it), UDP off, 64 MB of memory, 1 MiB max item (the default).
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";

export interface MemcachedServer {
  /** memjs servers string, "127.0.0.1:PORT". */
  servers: string;
  port: number;
  /** The memcached process id (e.g. to SIGSTOP it: a hung rather than a dead cache). */
  pid: number;
  /** SIGTERM and wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL, no waiting: the cache vanishing under a client. */
  kill(): void;
}

const MISSING = "memcached binary not found: install memcached: apt-get install -y memcached";

/** Start memcached; pass `port` to restart one on the same port. Extra args go to the binary. */
export async function startMemcached(opts: { port?: number; args?: string[] } = {}): Promise<MemcachedServer> {
  // A port picked as free may be taken before memcached binds it (tests run in parallel): retry.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      return await launch(port, opts.args ?? []);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 5 || (err as Error).message === MISSING) throw err;
    }
  }
}

async function launch(port: number, extra: string[]): Promise<MemcachedServer> {
  const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "64", ...extra];
  // memcached refuses to run as root without -u (CI and dev containers run as root).
  if (process.getuid?.() === 0) args.push("-u", "root");
  const child = spawn("memcached", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap); // never leave a memcached behind a crashed test run

  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "ENOENT" ? new Error(MISSING) : err),
    );
    child.once("exit", (code, signal) =>
      reject(new Error(`memcached exited early (${code ?? signal}) on port ${port}: ${stderr.trim()}`)),
    );
  });
  failed.catch(() => {}); // only awaited during start-up
  await Promise.race([waitForPort(port, 5000), failed]).catch((err) => {
    reap();
    throw err;
  });

  return {
    servers: `127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    async stop() {
      process.removeListener("exit", reap);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    kill() {
      process.removeListener("exit", reap);
      reap();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline) throw new Error(`memcached did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => (sock.destroy(), resolve(false)));
  });
}
