// TEST ONLY, until the real federation client (issue 4) is merged: a homeserver on a loopback HTTP port that
// records the onbind calls it receives (validating each body against openapi/homeserver.yaml), and a
// FederationClient that maps the server name `127.0.0.1:<port>` to `http://127.0.0.1:<port>` and nothing else.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { FederationError, type FederationClient, type FederationResponse } from '../../src/federation/types.js';

export interface RecordedCall {
  method: string;
  path: string;
  body: any;
}

export type Responder = (call: RecordedCall, index: number) => { status: number; body?: unknown };

export interface LoopbackHomeserver {
  /** `127.0.0.1:<port>`: the server name of this homeserver's users. */
  serverName: string;
  calls: RecordedCall[];
  /** Schema violations of received onbind bodies (must stay empty). */
  violations: string[];
  /** Replace to change how the next calls are answered (default: 200 {}). */
  respond: Responder;
  /** Resolves once `n` calls have been received, or rejects after `timeoutMs`. */
  waitForCalls(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const document = parse(readFileSync(new URL('../../openapi/homeserver.yaml', import.meta.url), 'utf8')) as object;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(document, 'homeserver');
const validateOnbind = ajv.getSchema('homeserver#/components/schemas/OnbindRequest')!;

/** Errors of an onbind body against openapi/homeserver.yaml; empty when it conforms. */
export function onbindBodyErrors(body: unknown): string[] {
  return validateOnbind(body) ? [] : (validateOnbind.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

export async function startLoopbackHomeserver(respond: Responder = () => ({ status: 200, body: {} })): Promise<LoopbackHomeserver> {
  const calls: RecordedCall[] = [];
  const violations: string[] = [];
  const hs: LoopbackHomeserver = {
    serverName: '',
    calls,
    violations,
    respond,
    async waitForCalls(n, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (calls.length < n) {
        if (Date.now() > deadline) throw new Error(`homeserver got ${calls.length} calls, expected ${n}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const call: RecordedCall = { method: req.method ?? '', path: req.url ?? '', body };
      if (call.path === '/_matrix/federation/v1/3pid/onbind') violations.push(...onbindBodyErrors(body));
      else violations.push(`unexpected call ${call.method} ${call.path}`);
      const answer = hs.respond(call, calls.length);
      calls.push(call);
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hs.serverName = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return hs;
}

/** Plain HTTP to loopback server names only; anything else fails permanently. */
export const loopbackFederationClient: FederationClient = {
  async getJson(serverName, path, query) {
    const qs = query ? `?${new URLSearchParams(query).toString()}` : '';
    return call(serverName, `${path}${qs}`, { method: 'GET' });
  },
  async postJson(serverName, path, body) {
    return call(serverName, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  },
};

async function call(serverName: string, path: string, init: RequestInit): Promise<FederationResponse> {
  if (!/^127\.0\.0\.1:\d+$/.test(serverName)) throw new FederationError(`test client serves only 127.0.0.1:<port>, not ${serverName}`, true);
  let res: Response;
  try {
    res = await fetch(`http://${serverName}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new FederationError(`connection failed: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}
