// Starts a real Tessera on an ephemeral loopback port, on a fresh database, for integration tests.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ConfigInput } from '../../src/config.js';
import { startService, type Service } from '../../src/service.js';
import { createLogger } from '../../src/util/logger.js';
import type { Authenticator } from '../../src/http/security.js';
import type { FederationClient } from '../../src/federation/types.js';

export interface TestServer {
  url: string;
  service: Service;
  dataDir: string;
  violations: string[];
  logs: string[];
  /** JSON request helper: returns status and parsed body. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  dbUrl: string;
  dataDir?: string;
  overrides?: ConfigInput;
  clock?: () => number;
  auth?: Authenticator;
  /** Replaces the federation client built from config (default: the real one). */
  federation?: FederationClient;
}

export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'tessera-data-'));
  const server = createServer({ connectionsCheckingInterval: 100 }); // so request timeouts are enforced promptly
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    argv: [],
    env: {},
    overrides: {
      ...opts.overrides,
      // Tests send many invites and verification emails for one address and sender; the rate-limit tests set their own.
      rateLimits: { storeInvitePerIp: 0, storeInvitePerSender: 0, storeInvitePerAddress: 0, requestTokenPerIp: 0, requestTokenPerAddress: 0, ...opts.overrides?.rateLimits },
      dataDir,
      server: { host: '127.0.0.1', port, publicBaseUrl: url, name: 'is.test', ...opts.overrides?.server },
      database: { url: opts.dbUrl, ...opts.overrides?.database },
      log: { level: 'debug' },
    },
  });
  const logs: string[] = [];
  const violations: string[] = [];
  const service = await startService(config, {
    log: createLogger('debug', (line) => logs.push(line)),
    clock: opts.clock,
    auth: opts.auth,
    federation: opts.federation,
    responseViolations: violations,
    server,
  });
  return {
    url,
    service,
    dataDir,
    violations,
    logs,
    async call(method, path, body, headers = {}) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      await service.stop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
