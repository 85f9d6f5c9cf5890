// Homeserver-signed unbind (Authorization: X-Matrix), as Synapse sends it when a user removes an address or
// deactivates their account: real Tessera over HTTP, the REAL federation client fetching the signing key from an
// HTTPS fake homeserver that serves /_matrix/key/v2/server with a real ed25519 key (tweetnacl), on every database.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { readVerificationMail, verificationMailCount } from '../helpers/verificationMail.js';
import { smtpConfig, startSmtp, type TestSmtp } from '../helpers/smtp.js';
import {
  serveSigningKey,
  startFakeHomeserver,
  synapseAuthHeader,
  type FakeHomeserver,
  type HomeserverSigningKey,
} from '../helpers/fakeHomeserver.js';
import type { Authenticator } from '../../src/platform/http/security.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const IS_NAME = 'is.test';
const KEYS = '/_matrix/key/v2/server';

const testAuth: Authenticator = {
  async authenticate(token) {
    return token.startsWith('tok:') ? { account: { userId: token.slice(4) }, termsAccepted: true } : undefined;
  },
};

let counter = 0;
const uniqueAddress = (tag: string) => `${tag}.${Date.now().toString(36)}${(counter++).toString(36)}@example.org`;
const VERSIONS = [
  ['v1', V1],
  ['v2', V2],
] as const;

describe.each(testDatabases())('X-Matrix unbind on $name', (db) => {
  let srv: TestServer;
  let hs: FakeHomeserver;
  let expiredHs: FakeHomeserver;
  let key: HomeserverSigningKey;
  let expiredKey: HomeserverSigningKey;
  let smtp: TestSmtp;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    hs = await startFakeHomeserver();
    key = serveSigningKey(hs);
    expiredHs = await startFakeHomeserver();
    expiredKey = serveSigningKey(expiredHs, { validUntilTs: () => Date.now() - 60_000 });
    smtp = await startSmtp();
    srv = await startTestServer({
      dbUrl: created.url,
      auth: testAuth,
      overrides: { ...smtpConfig(smtp.port), federation: { verifyTls: false, allow: ['127.0.0.1/32'] }, server: { name: IS_NAME } },
    });
  });
  afterAll(async () => {
    await srv?.stop();
    await hs?.stop();
    await expiredHs?.stop();
    await smtp?.stop();
    await dispose?.();
  });
  afterEach(() => {
    expect(srv.violations.splice(0)).toEqual([]);
  });

  /** Validates `address` by email (v1, no account needed) and binds it to `mxid`. */
  const bind = async (address: string, mxid: string) => {
    const clientSecret = `secret-${counter++}`;
    const sent = verificationMailCount(smtp, address);
    const req = await srv.call('POST', `${V1}/validate/email/requestToken`, {
      client_secret: clientSecret,
      email: address,
      send_attempt: 1,
    });
    expect(req.status, JSON.stringify(req.body)).toBe(200);
    const mail = await readVerificationMail(smtp, address, { count: sent + 1 });
    const sub = await srv.call('POST', `${V1}/validate/email/submitToken`, {
      sid: req.body.sid,
      client_secret: clientSecret,
      token: mail.token,
    });
    expect(sub.body).toEqual({ success: true });
    const res = await srv.call('POST', `${V1}/3pid/bind`, { sid: req.body.sid, client_secret: clientSecret, mxid });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  };

  const boundTo = async (address: string): Promise<string | undefined> => {
    const res = await srv.call('GET', `${V1}/lookup?medium=email&address=${encodeURIComponent(address)}`);
    expect(res.status).toBe(200);
    return res.body.mxid;
  };

  /** POSTs an unbind body with the Authorization header Synapse would build for it (overridable per field). */
  const signedUnbind = (
    base: string,
    content: Record<string, unknown>,
    opts: {
      signer?: HomeserverSigningKey;
      origin?: string;
      headerDestination?: string;
      signedDestination?: 'destination_is' | 'destination';
      signedUri?: string;
      signedContent?: unknown;
      header?: string;
    } = {},
  ) => {
    const uri = `${base}/3pid/unbind`;
    const authorization =
      opts.header ??
      synapseAuthHeader(opts.signer ?? key, {
        origin: opts.origin ?? hs.serverName,
        identityServer: IS_NAME,
        method: 'POST',
        uri: opts.signedUri ?? uri,
        content: opts.signedContent ?? content,
        headerDestination: opts.headerDestination,
        signedDestination: opts.signedDestination,
      });
    return srv.call('POST', uri, content, { authorization });
  };

  // A signature that is present but bad or unverifiable is invalid credentials: 403 M_UNAUTHORIZED (the spec's answer
  // for unbind); 401 is left for a request with no credentials at all.
  describe.each(VERSIONS)('on %s', (_version, base) => {
    it('unbinds when the homeserver of the mxid signs the request as Synapse does', async () => {
      const address = uniqueAddress('deact');
      const mxid = `@deact:${hs.serverName}`;
      await bind(address, mxid);
      expect(await boundTo(address)).toBe(mxid);
      const content = { mxid, threepid: { medium: 'email', address } };
      const res = await signedUnbind(base, content);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toEqual({});
      expect(await boundTo(address)).toBeUndefined();
      // the key came from the origin over the federation client, with our Host/SNI rules
      expect(hs.requestsTo(KEYS).length).toBeGreaterThanOrEqual(1);
      expect(hs.requestsTo(KEYS).every((r) => r.method === 'GET')).toBe(true);
      // the same signed request again: the address is no longer bound
      const again = await signedUnbind(base, content);
      expect(again.status).toBe(404);
    });

    it('accepts the federation form (destination signed and in the header) and unquoted parameters', async () => {
      const address = uniqueAddress('fedform');
      const mxid = `@fedform:${hs.serverName}`;
      await bind(address, mxid);
      const content = { mxid, threepid: { medium: 'email', address } };
      const quoted = synapseAuthHeader(key, {
        origin: hs.serverName,
        identityServer: IS_NAME,
        method: 'POST',
        uri: `${base}/3pid/unbind`,
        content,
        signedDestination: 'destination',
        headerDestination: IS_NAME,
      });
      const unquoted = quoted.replace(/"/g, '').replace(/,/g, ', ');
      const res = await signedUnbind(base, content, { header: unquoted });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(await boundTo(address)).toBeUndefined();
    });

    it('refuses a signature by another key under the same key id with 403, and keeps the association', async () => {
      const address = uniqueAddress('forged');
      const mxid = `@forged:${hs.serverName}`;
      await bind(address, mxid);
      const impostor = serveSigningKey(await detachedHomeserver(), { keyId: key.keyId });
      const res = await signedUnbind(base, { mxid, threepid: { medium: 'email', address } }, { signer: impostor });
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_UNAUTHORIZED');
      expect(await boundTo(address)).toBe(mxid);
    });

    it('refuses a signature over other content or another uri with 403', async () => {
      const address = uniqueAddress('tamper');
      const mxid = `@tamper:${hs.serverName}`;
      await bind(address, mxid);
      const content = { mxid, threepid: { medium: 'email', address } };
      const otherContent = await signedUnbind(base, content, {
        signedContent: { mxid, threepid: { medium: 'email', address: 'other@example.org' } },
      });
      expect(otherContent.status).toBe(403);
      expect(otherContent.body.errcode).toBe('M_UNAUTHORIZED');
      const otherUri = await signedUnbind(base, content, { signedUri: `${base === V1 ? V2 : V1}/3pid/unbind` });
      expect(otherUri.status).toBe(403);
      expect(await boundTo(address)).toBe(mxid);
    });

    it('refuses a homeserver unbinding a user of another server', async () => {
      const address = uniqueAddress('foreign');
      const mxid = '@victim:other.example';
      await bind(address, mxid);
      const res = await signedUnbind(base, { mxid, threepid: { medium: 'email', address } });
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_UNAUTHORIZED');
      expect(await boundTo(address)).toBe(mxid);
    });

    it('refuses with 403 when the origin serves an expired key response', async () => {
      const address = uniqueAddress('expired');
      const mxid = `@expired:${expiredHs.serverName}`;
      await bind(address, mxid);
      const res = await signedUnbind(
        base,
        { mxid, threepid: { medium: 'email', address } },
        { signer: expiredKey, origin: expiredHs.serverName },
      );
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_UNAUTHORIZED');
      expect(expiredHs.requestsTo(KEYS).length).toBeGreaterThanOrEqual(1);
      expect(await boundTo(address)).toBe(mxid);
    });

    it('refuses a request addressed to another identity server with 403', async () => {
      const address = uniqueAddress('elsewhere');
      const mxid = `@elsewhere:${hs.serverName}`;
      await bind(address, mxid);
      const content = { mxid, threepid: { medium: 'email', address } };
      const header = await signedUnbind(base, content, { headerDestination: 'other-is.example' });
      expect(header.status).toBe(403);
      expect(header.body.errcode).toBe('M_UNAUTHORIZED');
      // signed for another identity server (no destination in the header)
      const signedFor = synapseAuthHeader(key, {
        origin: hs.serverName,
        identityServer: 'other-is.example',
        method: 'POST',
        uri: `${base}/3pid/unbind`,
        content,
      });
      const signed = await signedUnbind(base, content, { header: signedFor });
      expect(signed.status).toBe(403);
      expect(await boundTo(address)).toBe(mxid);
    });

    it('refuses malformed X-Matrix headers with 403 without calling anyone', async () => {
      const address = uniqueAddress('garbage');
      const mxid = `@garbage:${hs.serverName}`;
      await bind(address, mxid);
      const before = hs.requests.length;
      const content = { mxid, threepid: { medium: 'email', address } };
      for (const header of [
        'X-Matrix',
        'X-Matrix origin="a"',
        `X-Matrix origin="${hs.serverName}",key="ed25519:a_test",sig="!!!"`,
        `X-Matrix origin="bad host",key="ed25519:a_test",sig="${'A'.repeat(86)}"`,
      ]) {
        const res = await signedUnbind(base, content, { header });
        expect(res.status, header).toBe(403);
        expect(res.body.errcode).toBe('M_UNAUTHORIZED');
      }
      expect(hs.requests.length).toBe(before);
      expect(await boundTo(address)).toBe(mxid);
    });
  });

  it('v2 still answers 401 with neither an access token nor a signature, and still honours the owner token', async () => {
    const address = uniqueAddress('bearer');
    const mxid = `@bearer:${hs.serverName}`;
    await bind(address, mxid);
    const content = { mxid, threepid: { medium: 'email', address } };
    const none = await srv.call('POST', `${V2}/3pid/unbind`, content);
    expect(none.status).toBe(401);
    expect(none.body.errcode).toBe('M_UNAUTHORIZED');
    const badToken = await srv.call('POST', `${V2}/3pid/unbind`, content, { authorization: 'Bearer nope' });
    expect(badToken.status).toBe(401);
    const v1None = await srv.call('POST', `${V1}/3pid/unbind`, content);
    expect(v1None.status).toBe(403);
    expect(await boundTo(address)).toBe(mxid);
    const owner = await srv.call('POST', `${V2}/3pid/unbind`, content, { authorization: `Bearer tok:${mxid}` });
    expect(owner.status).toBe(200);
    expect(await boundTo(address)).toBeUndefined();
  });

  const spare: FakeHomeserver[] = [];
  /** A homeserver that only lends a key pair (never called). */
  async function detachedHomeserver(): Promise<FakeHomeserver> {
    const h = await startFakeHomeserver();
    spare.push(h);
    return h;
  }
  afterAll(async () => {
    await Promise.all(spare.map((h) => h.stop()));
  });
});
