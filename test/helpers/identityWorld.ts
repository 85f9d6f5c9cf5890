// What a client of the identity API meets: a Tessera with a terms file, a real SMTP server, and an HTTPS fake
// homeserver that answers OpenID userinfo for the tokens `openIdFor` hands out and receives onbind calls.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { settle, startTestServer, type TestServer } from './server.js';
import { smtpConfig, startSmtp, type TestSmtp } from './smtp.js';
import { startFakeHomeserver, type FakeHomeserver } from './fakeHomeserver.js';
import { onbindBodyErrors, routeOnbind, type OnbindEndpoint } from './onbind.js';

const USERINFO = '/_matrix/federation/v1/openid/userinfo';

export interface IdentityWorld {
  srv: TestServer;
  hs: FakeHomeserver;
  onbind: OnbindEndpoint;
  smtp: TestSmtp;
  /** The one terms document's URL. */
  termsUrl: string;
  /** A fresh OpenID token the fake homeserver vouches for, as `@localpart:<its server name>`. */
  openIdFor(localpart: string): { access_token: string; token_type: string; matrix_server_name: string; expires_in: number };
  /** After each test: every answer matched the document, every onbind body the homeserver document. */
  checkAnswers(): void;
  stop(): Promise<void>;
}

let counter = 0;

export async function startIdentityWorld(dbUrl: string, termsUrl = 'https://is.test/terms-1-en.html'): Promise<IdentityWorld> {
  const openIdTokens = new Map<string, string>();
  const hs = await startFakeHomeserver();
  hs.route('GET', USERINFO, (req) => {
    const user = openIdTokens.get(req.query.access_token ?? '');
    return user ? { body: { sub: user } } : { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'unknown token' } };
  });
  const onbind = routeOnbind(hs);
  const smtp = await startSmtp();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-world-'));
  writeFileSync(
    join(dir, 'terms.yaml'),
    `docs:\n  terms_of_service:\n    version: "1"\n    langs:\n      en:\n        name: Terms\n        url: ${termsUrl}\n`,
  );
  const srv = await startTestServer({
    dbUrl,
    overrides: {
      ...smtpConfig(smtp.port),
      terms: { file: join(dir, 'terms.yaml') },
      federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
      onbind: { initialBackoffMs: 20, maxBackoffMs: 200, pollIntervalMs: 100 },
    },
  });
  return {
    srv,
    hs,
    onbind,
    smtp,
    termsUrl,
    openIdFor(localpart) {
      const token = `openid-${counter++}-${Math.random().toString(36).slice(2)}`;
      openIdTokens.set(token, `@${localpart}:${hs.serverName}`);
      return { access_token: token, token_type: 'Bearer', matrix_server_name: hs.serverName, expires_in: 3600 };
    },
    checkAnswers() {
      expect(srv.violations.splice(0)).toEqual([]);
      // the fake homeserver also answers OpenID userinfo: check the onbind bodies only
      expect(onbind.calls.flatMap((c) => onbindBodyErrors(c.body))).toEqual([]);
    },
    async stop() {
      try {
        await settle([() => srv.stop(), () => hs.stop(), () => smtp.stop()]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
