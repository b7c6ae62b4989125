// `openai-wrapi dashboard`: the dashboard on 127.0.0.1, reading each stage through its admin function
// with the caller's own AWS credentials (as the CLI's admin commands do), deployed or local.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { STAGES } from '../../runtime/core/protocol.ts';
import { invokeAdmin } from '../admin.ts';
import { WrapiAccessDeniedError, WrapiAdminError, WrapiConfigError, WrapiConnectionError } from '../errors.ts';
import { createDashboard, DASHBOARD_PATH, type DashboardAnswer, type ProblemKind } from './serve.ts';

/** Tried first; when taken (and no port was asked for), any free port. */
export const DEFAULT_DASHBOARD_PORT = 8788;

export interface DashboardServerOptions {
  /** The stage shown first; the page offers it and the standard stages. */
  stage: string;
  /** Default {@link DEFAULT_DASHBOARD_PORT}; 0 for any free port. */
  port?: number;
  /** AWS profile to sign with (default: `AWS_PROFILE`, else the standard chain). */
  profile?: string;
}

export interface DashboardServer {
  /** The link to open: it carries the secret token of this run. */
  url: string;
  close(): Promise<void>;
}

export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const stages = [...new Set([...STAGES, opts.stage])];
  const token = randomBytes(24).toString('base64url');
  const profile = opts.profile ?? process.env.AWS_PROFILE;
  const handle = createDashboard({
    stages,
    stage: opts.stage,
    token,
    identity: () => (profile ? `AWS profile "${profile}"` : 'your AWS credentials (the standard chain)'),
    async invoke(stage, request): Promise<DashboardAnswer> {
      try {
        return await invokeAdmin(request, { staging: stage, ...(profile ? { profile } : {}) });
      } catch (err) {
        return { ok: false, error: problemOf(err) };
      }
    },
  });
  const server = createServer(async (req, res) => {
    try {
      if (await handle(req, res)) return;
      res.writeHead(302, { location: DASHBOARD_PATH, 'content-length': '0' });
      res.end();
    } catch {
      if (res.headersSent) return void res.destroy();
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('The dashboard failed to answer this request.\n');
    }
  });
  const port = await listen(server, opts.port ?? DEFAULT_DASHBOARD_PORT, opts.port === undefined);
  return {
    url: `http://127.0.0.1:${port}${DASHBOARD_PATH}?token=${token}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What the page should say about a failed admin call. */
export function problemOf(err: unknown): { kind: ProblemKind; message: string; code?: string | null } {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof WrapiAccessDeniedError) return { kind: 'not_admin', message, code: err.code };
  if (err instanceof WrapiConnectionError) return { kind: 'unreachable', message };
  if (err instanceof WrapiConfigError) return { kind: 'config', message };
  if (err instanceof WrapiAdminError) return { kind: err.code === 'function_not_found' ? 'unreachable' : 'refused', message, code: err.code };
  return { kind: 'unreachable', message };
}

function listen(server: Server, port: number, fallback: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (fallback && err.code === 'EADDRINUSE') return void server.listen(0, '127.0.0.1');
      reject(err);
    };
    server.on('error', onError);
    server.on('listening', () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
    server.listen(port, '127.0.0.1');
  });
}
