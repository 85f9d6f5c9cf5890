// Real database outages for integration tests, and what the log says of them: a TCP proxy in front of
// MariaDB/MySQL that cuts every connection; on SQLite another connection holding the write lock, or Tessera's one
// connection held by someone else (as a statement that never ends, or a stalled disk flush, holds it).
import { connect, createServer, type Socket } from 'node:net';
import BetterSqlite3 from 'better-sqlite3';
import type { Service } from '../../src/service.js';
import { parseLog } from './logs.js';

export interface TcpProxy {
  /** Where to connect instead of the target. */
  port: number;
  /** Resets every connection through the proxy, and every new one, until restore(). */
  cut(): void;
  restore(): void;
  stop(): Promise<void>;
}

/**
 * A loopback TCP proxy to `host:port`. Cutting keeps the listening socket and resets each connection (the database
 * "connection reset"), rather than closing and reopening it: the port could be taken by another socket meanwhile.
 */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(port, host);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      cut = true;
      for (const s of sockets) s.resetAndDestroy();
    },
    restore() {
      cut = false;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `url` (mysql://...) with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

/** Another connection to the SQLite file takes the write lock and keeps it until the returned function is called. */
export function holdSqliteWriteLock(file: string): () => void {
  const other = new BetterSqlite3(file);
  other.exec('BEGIN IMMEDIATE');
  return () => {
    other.exec('ROLLBACK');
    other.close();
  };
}

/** Takes the service's one SQLite connection from its pool until the returned function is called. */
export async function holdSqliteConnection(service: Service): Promise<() => Promise<void>> {
  const client = service.db.knex.client as { acquireConnection(): Promise<unknown>; releaseConnection(c: unknown): Promise<void> };
  const conn = await client.acquireConnection();
  return () => client.releaseConnection(conn);
}

/** Log lines at `level` (`WARN`, `INFO`, `ERROR`) whose message starts with `message`. */
export function logLines(logs: string[], level: string, message = ''): string[] {
  return logs.filter((l) => {
    const line = parseLog(l);
    return line.level === level.toLowerCase() && line.msg.startsWith(message);
  });
}

/** Lines carrying a stack trace (the logger writes an error's stack as one JSON string, its newlines escaped). */
export function stackLines(logs: string[]): string[] {
  return logs.filter((l) => /(\\n|\n)\s+at /.test(l));
}
