// The contract checker's own counterparts of a target identity server: an SMTP sink that keeps every message it is
// handed (verification and invitation emails carry the tokens the flows need) and an HTTPS fake homeserver on
// loopback (OpenID userinfo for v2 registration, onbind after a bind). Written here, not imported from test/, so the
// checker runs without vitest.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

export interface SunkMail {
  to: string[];
  text: string;
}

export interface SmtpSink {
  port: number;
  messages: SunkMail[];
  /** The newest message to `recipient` whose text matches `pattern`, once it arrives; undefined after `timeoutMs`. */
  waitFor(recipient: string, pattern: RegExp, timeoutMs: number): Promise<SunkMail | undefined>;
  stop(): Promise<void>;
}

export async function startSmtpSink(port: number): Promise<SmtpSink> {
  const messages: SunkMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    disableReverseLookup: true,
    size: 1024 * 1024,
    onData(stream, session, cb) {
      const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
      simpleParser(stream).then(
        (parsed) => {
          // The HTML part is kept too: some servers send their links only there.
          messages.push({ to, text: `${parsed.text ?? ''}\n${typeof parsed.html === 'string' ? parsed.html : ''}` });
          cb();
        },
        (err: Error) => cb(err),
      );
    },
  });
  // A client that drops the connection is reported as an 'error' event; it must not end the checker.
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    async waitFor(recipient, pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.filter((m) => m.to.includes(recipient.toLowerCase()) && pattern.test(m.text)).pop();
        if (found || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface HomeserverRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

export interface CheckerHomeserver {
  /** `127.0.0.1:<port>`: the Matrix server name of the checker's users. */
  serverName: string;
  port: number;
  requests: HomeserverRequest[];
  /** Makes `accessToken` an OpenID token the userinfo endpoint vouches for as `userId`. */
  vouch(accessToken: string, userId: string): void;
  /** The first request to `path` after `since` requests, once it arrives; undefined after `timeoutMs`. */
  waitFor(path: string, since: number, timeoutMs: number): Promise<HomeserverRequest | undefined>;
  stop(): Promise<void>;
}

export const USERINFO_PATH = '/_matrix/federation/v1/openid/userinfo';
export const ONBIND_PATH = '/_matrix/federation/v1/3pid/onbind';

/** A short-lived self-signed certificate for 127.0.0.1 from the openssl CLI, else the test fixtures' long-lived one. */
function tlsIdentity(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-checker-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2'],
        ...['-subj', '/CN=checker-homeserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } catch {
    const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8');
    return { cert: fixture('fake-homeserver.cert.pem'), key: fixture('fake-homeserver.key.pem') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startHomeserver(port: number): Promise<CheckerHomeserver> {
  const vouched = new Map<string, string>();
  const requests: HomeserverRequest[] = [];
  const server: Server = createServer(tlsIdentity(), (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://checker');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text || undefined;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, body });
      const answer = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.method === 'GET' && url.pathname === USERINFO_PATH) {
        const user = vouched.get(url.searchParams.get('access_token') ?? '');
        return user ? answer(200, { sub: user }) : answer(401, { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown OpenID token' });
      }
      if (req.method === 'POST' && url.pathname === ONBIND_PATH) return answer(200, {});
      answer(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    serverName: `127.0.0.1:${actual}`,
    port: actual,
    requests,
    vouch: (accessToken, userId) => vouched.set(accessToken, userId),
    async waitFor(path, since, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = requests.slice(since).find((r) => r.path === path);
        if (found || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
