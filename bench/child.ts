/**
 * A child process of the bench (fake upstream, stack, dynalite, a peer gateway) that the load
 * generator talks to over IPC: it sends `{ ready: true, ... }` once it serves, then answers
 * `{ id, cmd }` messages with `{ id, ok, value | error }`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ForkOptions {
  /** The module to run and its arguments. */
  module: string;
  args?: string[];
  execArgv?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Where the child's stdout goes (a peer may print a banner the bench has no use for). */
  stdout?: 'inherit' | 'ignore';
}

export class Child {
  private seq = 0;
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  ready!: Record<string, any>;
  constructor(readonly name: string, readonly proc: ChildProcess) {
    proc.on('message', (m: any) => {
      if (m?.id === undefined) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(`${name}: ${m.error}`));
    });
    proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code})`));
      this.pending.clear();
    });
  }

  /** One of bench/stack-main.ts's roles (fake, dynalite, stack), run under tsx with GC exposed. */
  static start(role: string, childEnv: Record<string, string> = {}, extraArgs: string[] = []): Promise<Child> {
    return Child.fork(role, {
      module: path.join(ROOT, 'bench/stack-main.ts'),
      args: [role],
      execArgv: ['--import', 'tsx', '--expose-gc', ...extraArgs],
      env: childEnv,
    });
  }

  static async fork(name: string, o: ForkOptions): Promise<Child> {
    const proc = fork(o.module, o.args ?? [], {
      cwd: o.cwd ?? ROOT,
      execArgv: o.execArgv ?? [],
      env: { ...process.env, ...o.env },
      stdio: ['ignore', o.stdout ?? 'inherit', 'inherit', 'ipc'],
    });
    const child = new Child(name, proc);
    child.ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${name} did not start within 60 s`));
      }, 60_000);
      proc.on('message', (m: any) => {
        if (m?.ready) {
          clearTimeout(timer);
          resolve(m);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready`));
      });
    });
    return child;
  }

  call<T = any>(cmd: string, extra: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.send({ id, cmd, ...extra });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    await this.call('stop').catch(() => undefined);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
