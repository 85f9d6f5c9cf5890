// Starts a real Tessera on an ephemeral loopback port, on a fresh database, for integration tests.
import { createServer } from 'node:http';
import { expect, inject } from 'vitest';
import type { AddressInfo } from 'node:net';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ConfigInput } from '../../src/platform/config.js';
import { startService, type Service } from '../../src/service.js';
import { createLogger } from '../../src/platform/logger.js';
import type { Authenticator } from '../../src/platform/http/security.js';
import type { FederationClient } from '../../src/federation/types.js';

export interface TestServer {
  url: string;
  service: Service;
  dataDir: string;
  /** Responses that do not match openapi/identity.yaml (status or schema), each naming the test it was sent in. */
  violations: string[];
  logs: string[];
  /** JSON request helper: returns status and parsed body. */
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** Stops the server; then throws, listing them, if any response did not match the document (see allowViolations). */
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
  /**
   * Every response is checked against the document and stop() fails on any mismatch. A test that means to provoke
   * responses the document cannot describe opts out here, saying why (the reason must not be empty).
   */
  allowViolations?: { reason: string };
}

/** Runs every clean-up step, even after one fails, then throws the first failure (a stop() with violations, say). */
export async function settle(steps: (() => Promise<unknown> | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(steps.map(async (step) => step()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  if (opts.allowViolations && opts.allowViolations.reason.trim() === '') throw new Error('allowViolations needs a reason');
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
      rateLimits: {
        storeInvitePerIp: 0,
        storeInvitePerSender: 0,
        storeInvitePerAddress: 0,
        requestTokenPerIp: 0,
        requestTokenPerAddress: 0,
        ...opts.overrides?.rateLimits,
      },
      dataDir,
      server: { host: '127.0.0.1', port, publicBaseUrl: url, name: 'is.test', ...opts.overrides?.server },
      database: { url: opts.dbUrl, ...opts.overrides?.database },
      log: { level: 'debug' },
    },
  });
  const logs: string[] = [];
  const violations: string[] = [];
  // Requests are served in this process while a test awaits them: note which test was running, for stop()'s list.
  // (Not enumerable, so that `expect(srv.violations).toEqual([])` still compares the entries only.)
  Object.defineProperty(violations, 'push', {
    enumerable: false,
    value: (...items: string[]) =>
      Array.prototype.push.apply(
        violations,
        items.map((v) => `${v} [in: ${expect.getState().currentTestName ?? 'no test'}]`),
      ),
  });
  // Every answer's operation, status and errcode, for the suite's errcode coverage (test/helpers/errcodeCoverage.ts).
  const seen = new Set<string>();
  const service = await startService(config, {
    log: createLogger('debug', (line) => logs.push(line)),
    clock: opts.clock,
    auth: opts.auth,
    federation: opts.federation,
    responseViolations: violations,
    responseSeen: (op, status, errcode) => {
      if (errcode !== undefined) seen.add(`${op} ${status} ${errcode}`);
    },
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
      const dir = inject('errcodeDir');
      if (dir && seen.size > 0) appendFileSync(join(dir, `${process.pid}.txt`), [...seen, ''].join('\n'));
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (violations.length > 0 && !opts.allowViolations) {
        throw new Error(`${violations.length} response(s) did not match openapi/identity.yaml:\n${violations.join('\n')}`);
      }
    },
  };
}
