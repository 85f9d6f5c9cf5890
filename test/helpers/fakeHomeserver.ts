// A real HTTPS "homeserver" on 127.0.0.1 (ephemeral port, self-signed certificate made at test time with
// the openssl CLI, or the committed fixture when openssl is missing). Tests register JSON routes; every
// request is recorded. Its server name is `127.0.0.1:<port>`.
import { createServer, type Server } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { canonical } from './signatures.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  body: unknown;
  /** The TLS server name the client sent (SNI); undefined when it sent none (IP literals). */
  sni: string | undefined;
}

export interface RouteAnswer {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Raw body bytes/text instead of JSON (malformed or huge answers). */
  raw?: string | Buffer;
  /** Wait this long before answering (slow servers). */
  delayMs?: number;
}

export type RouteHandler = (req: RecordedRequest) => RouteAnswer | Promise<RouteAnswer>;

export interface TlsIdentity {
  cert: string;
  key: string;
}

export interface FakeHomeserver {
  /** `127.0.0.1:<port>`: the Matrix server name that reaches this server. */
  serverName: string;
  port: number;
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** The certificate, for clients that keep verification on (pass it as a CA). */
  cert: string;
  requests: RecordedRequest[];
  /** Registers (or replaces) the answer for `METHOD path` (path without query string). */
  route(method: string, path: string, handler: RouteHandler | RouteAnswer): void;
  /** Requests recorded for a path (any method). */
  requestsTo(path: string): RecordedRequest[];
  stop(): Promise<void>;
}

let cachedIdentity: TlsIdentity | undefined;

/**
 * A self-signed certificate for 127.0.0.1, ::1, localhost and *.test names. Made with the openssl CLI
 * when it exists (short-lived), else read from test/fixtures/ (a long-lived committed pair).
 */
export function tlsIdentity(): TlsIdentity {
  if (cachedIdentity) return cachedIdentity;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=fake-homeserver.test',
        '-addext',
        'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:hs.test,DNS:*.hs.test,DNS:delegated.test,DNS:other.test',
      ],
      { stdio: 'ignore' },
    );
    cachedIdentity = { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } catch {
    const fixtures = new URL('../fixtures/', import.meta.url);
    cachedIdentity = {
      cert: readFileSync(new URL('fake-homeserver.cert.pem', fixtures), 'utf8'),
      key: readFileSync(new URL('fake-homeserver.key.pem', fixtures), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return cachedIdentity;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startFakeHomeserver(opts: { host?: string } = {}): Promise<FakeHomeserver> {
  const host = opts.host ?? '127.0.0.1';
  const identity = tlsIdentity();
  const routes = new Map<string, RouteHandler>();
  const requests: RecordedRequest[] = [];

  const server: Server = createServer({ cert: identity.cert, key: identity.key }, (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://fake');
      const text = await readBody(req);
      let body: unknown;
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
        sni: ((req.socket as TLSSocket).servername as string | false | undefined) || undefined,
      };
      requests.push(recorded);
      const handler = routes.get(`${recorded.method} ${recorded.path}`);
      const answer: RouteAnswer = handler
        ? await handler(recorded)
        : { status: 404, body: { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' } };
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      if (res.destroyed) return;
      const payload = answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
      res.end(payload);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    serverName: `${hostPart}:${port}`,
    port,
    url: `https://${hostPart}:${port}`,
    cert: identity.cert,
    requests,
    route(method, path, handler) {
      routes.set(`${method.toUpperCase()} ${path}`, typeof handler === 'function' ? handler : () => handler);
    },
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface HomeserverSigningKey {
  keyId: string;
  /** Unpadded base64 public key, as /_matrix/key/v2/server publishes it. */
  publicKey: string;
  /** Signs `object` as Synapse's sign_json does: returns the unpadded base64 signature of its canonical JSON. */
  sign(object: Record<string, unknown>): string;
}

export interface ServeKeyOptions {
  keyId?: string;
  /** valid_until_ts of the answer (default: a day from now). */
  validUntilTs?: () => number;
  /** server_name of the answer (default: the homeserver's own). */
  serverName?: string;
  /** Sign the answer with this key instead (default: the served key itself). */
  signWith?: HomeserverSigningKey;
}

/**
 * Gives the fake homeserver a real ed25519 signing key (tweetnacl) and serves it, self-signed, at
 * GET /_matrix/key/v2/server as Synapse does. Returns the key, to sign requests with.
 */
export function serveSigningKey(hs: FakeHomeserver, opts: ServeKeyOptions = {}): HomeserverSigningKey {
  const pair = nacl.sign.keyPair();
  const keyId = opts.keyId ?? 'ed25519:a_test';
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64').replace(/=+$/, '');
  const key: HomeserverSigningKey = {
    keyId,
    publicKey: b64(pair.publicKey),
    sign: (object) => b64(nacl.sign.detached(Buffer.from(canonical(object), 'utf8'), pair.secretKey)),
  };
  hs.route('GET', '/_matrix/key/v2/server', () => {
    const serverName = opts.serverName ?? hs.serverName;
    const body = {
      server_name: serverName,
      valid_until_ts: opts.validUntilTs ? opts.validUntilTs() : Date.now() + 24 * 3600 * 1000,
      verify_keys: { [keyId]: { key: key.publicKey } },
      old_verify_keys: {},
    };
    const signer = opts.signWith ?? key;
    return { status: 200, body: { ...body, signatures: { [serverName]: { [signer.keyId]: signer.sign(body) } } } };
  });
  return key;
}

/**
 * The Authorization header Synapse sends with an unbind (synapse/http/matrixfederationclient.py build_auth_headers,
 * called with destination=None and destination_is=<identity server>): the signed JSON holds method, uri, origin,
 * destination_is and content; the header carries origin, key and sig (and `destination` only when asked).
 */
export function synapseAuthHeader(
  key: HomeserverSigningKey,
  req: {
    origin: string;
    identityServer: string;
    method: string;
    uri: string;
    content?: unknown;
    headerDestination?: string;
    signedDestination?: 'destination_is' | 'destination';
  },
): string {
  const signed: Record<string, unknown> = {
    method: req.method,
    uri: req.uri,
    origin: req.origin,
    [req.signedDestination ?? 'destination_is']: req.identityServer,
  };
  if (req.content !== undefined) signed.content = req.content;
  const sig = key.sign(signed);
  const destination = req.headerDestination === undefined ? '' : `,destination="${req.headerDestination}"`;
  return `X-Matrix origin="${req.origin}"${destination},key="${key.keyId}",sig="${sig}"`;
}
