// The invitation lifecycle driven through the package's typed client (src/client, exported as `tessera/client`),
// on v2 and v1 and on every database: register and accept the terms, store an invitation, check both its keys,
// sign with the emailed private key, validate and bind the address, see the signed onbind reach the homeserver,
// look the binding up; and the Matrix errors on the way, as the client's one error class with typed errcodes.
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createIdentityClient, MatrixError, type ErrcodeOf, type IdentityClient } from '../../src/client/index.js';
import { testDatabases } from '../helpers/databases.js';
import type { TestServer } from '../helpers/server.js';
import type { TestSmtp } from '../helpers/smtp.js';
import { readInviteMail, readVerificationMail, verificationMailCount } from '../helpers/verificationMail.js';
import type { FakeHomeserver } from '../helpers/fakeHomeserver.js';
import type { OnbindEndpoint } from '../helpers/onbind.js';
import { startIdentityWorld, type IdentityWorld } from '../helpers/identityWorld.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';

let counter = 0;
const uniqueAddress = (tag: string) => `${tag}.${Date.now().toString(36)}${(counter++).toString(36)}@Example.org`;

/** The error a promise rejects with (a test failure when it resolves). */
async function rejection(p: Promise<unknown>): Promise<MatrixError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a MatrixError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(MatrixError);
  return outcome.error as MatrixError;
}

describe.each(testDatabases())('the typed client on $name', (db) => {
  let world: IdentityWorld;
  let srv: TestServer;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let smtp: TestSmtp;
  let dispose: () => Promise<void>;

  /** A v2 client registered as `@localpart:<fake homeserver>` with the terms accepted. */
  const registered = async (localpart: string): Promise<IdentityClient> => {
    const client = createIdentityClient({ baseUrl: srv.url });
    const token = await client.registerAccount(world.openIdFor(localpart));
    expect(client.accessToken).toBe(token);
    const { policies } = await client.getTerms();
    await client.agreeToTerms(Object.values(policies).map((p) => (p as unknown as { en: { url: string } }).en.url));
    return client;
  };

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    world = await startIdentityWorld(created.url);
    ({ srv, hs, onbind, smtp } = world);
  });
  afterAll(async () => {
    try {
      await world?.stop();
    } finally {
      await dispose?.();
    }
  });
  beforeEach(() => onbind.reset());
  afterEach(() => world.checkAnswers());

  describe.each(['v2', 'v1'] as const)('over %s', (version) => {
    it('runs store-invite, key checks, sign-ed25519, validation, bind, onbind and lookups', async () => {
      const inviter = version === 'v2' ? await registered('alice') : createIdentityClient({ baseUrl: srv.url, version });
      const sender = `@alice:${hs.serverName}`;
      const address = uniqueAddress(`Invitee-${version}`);

      const stored = await inviter.storeInvite({ medium: 'email', address, room_id: '!tea:hs.example', sender, room_name: 'Tea party' });
      expect(stored.token).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      expect(stored.display_name).not.toContain(address.split('@')[0]);
      const [longTerm, ephemeral] = stored.public_keys;
      expect(longTerm!.public_key).toBe(stored.public_key);
      for (const key of stored.public_keys) {
        expect(
          new URL(key.key_validity_url).pathname.startsWith(version === 'v2' ? '/_matrix/identity/v2/' : '/_matrix/identity/api/v1/'),
        ).toBe(true);
      }
      expect(await inviter.isPubKeyValid(longTerm!.public_key)).toBe(true);
      expect(await inviter.isEphemeralPubKeyValid(ephemeral!.public_key)).toBe(true);
      expect(await inviter.isEphemeralPubKeyValid(longTerm!.public_key)).toBe(false);
      expect((await inviter.getPubKey('ed25519:0')).public_key).toBe(longTerm!.public_key);

      // the invitee's web client signs with the private key from the emailed link
      const mxid = `@invitee-${version}:${hs.serverName}`;
      const privateKey = new URL((await readInviteMail(smtp, address)).signurl).searchParams.get('private_key')!;
      const invitee = version === 'v2' ? await registered(`invitee-${version}`) : createIdentityClient({ baseUrl: srv.url, version });
      const signed = await invitee.signEd25519({ mxid, token: stored.token, private_key: privateKey });
      expect(signed).toMatchObject({ mxid, sender, token: stored.token });
      expect(verifyMatrixSignature(signed, 'is.test', 'ed25519:0', ephemeral!.public_key)).toBe(true);

      // the invitee proves the address and binds it; the homeserver gets the signed invitation
      const clientSecret = `secret-${counter++}`;
      const sent = verificationMailCount(smtp, address);
      const sid = await invitee.emailRequestToken({ client_secret: clientSecret, email: address, send_attempt: 1 });
      const { token } = await readVerificationMail(smtp, address, { count: sent + 1 });
      expect(await invitee.emailSubmitToken({ sid, client_secret: clientSecret, token })).toBe(true);
      expect(await invitee.getValidated3pid(sid, clientSecret)).toMatchObject({ medium: 'email', address: address.toLowerCase() });
      const association = await invitee.bind({ sid, client_secret: clientSecret, mxid });
      expect(association).toMatchObject({ medium: 'email', address: address.toLowerCase(), mxid });
      expect(verifyMatrixSignature(association, 'is.test', 'ed25519:0', longTerm!.public_key)).toBe(true);
      await onbind.waitForCalls(1);
      const delivered = onbind.calls[0]!.body;
      expect(delivered.invites.map((i: { token: string }) => i.token)).toEqual([stored.token]);
      expect(verifyMatrixSignature(delivered.invites[0].signed, 'is.test', 'ed25519:0', longTerm!.public_key)).toBe(true);

      // lookups answer the binding
      if (version === 'v2') {
        const { lookup_pepper, algorithms } = await invitee.getHashDetails();
        expect(algorithms).toContain('sha256');
        const hash = createHash('sha256').update(`${address.toLowerCase()} email ${lookup_pepper}`).digest('base64url');
        expect(await invitee.lookup({ addresses: [hash], algorithm: 'sha256', pepper: lookup_pepper })).toEqual({ [hash]: mxid });
      } else {
        expect(await invitee.lookupV1('email', address)).toMatchObject({ mxid, address: address.toLowerCase() });
        expect(await invitee.bulkLookupV1([['email', address.toLowerCase()]])).toEqual([['email', address.toLowerCase(), mxid]]);
      }

      // a bound address is refused further invitations: a MatrixError narrowed to store-invite's errcodes
      const inUse = await rejection(inviter.storeInvite({ medium: 'email', address, room_id: '!tea:hs.example', sender }));
      expect(inUse.is('storeInvite')).toBe(true);
      expect(inUse.is('bind')).toBe(false);
      if (inUse.is('storeInvite')) {
        const code: ErrcodeOf<'storeInvite'> = inUse.errcode;
        expect(code).toBe('M_THREEPID_IN_USE');
      }
      expect(inUse).toMatchObject({ status: 400, operation: 'storeInvite', operationId: version === 'v2' ? 'storeInviteV2' : 'invite' });
      expect((inUse.body as { mxid?: string }).mxid).toBe(mxid);
    });
  });

  it('turns every Matrix error into a MatrixError with the status, errcode and operation', async () => {
    const anonymous = createIdentityClient({ baseUrl: srv.url });
    const unauthorized = await rejection(
      anonymous.storeInvite({ medium: 'email', address: 'x@example.org', room_id: '!r:hs.example', sender: '@s:hs.example' }),
    );
    expect(unauthorized).toMatchObject({ status: 401, errcode: 'M_UNAUTHORIZED', operation: 'storeInvite' });
    expect(unauthorized.message).toContain('M_UNAUTHORIZED');

    const client = await registered('errors');
    const msisdn = await rejection(
      client.storeInvite({ medium: 'msisdn', address: '15551234567', room_id: '!r:hs.example', sender: `@errors:${hs.serverName}` }),
    );
    expect(msisdn).toMatchObject({ status: 400, errcode: 'M_UNRECOGNIZED' });
    const notMine = await rejection(
      client.storeInvite({ medium: 'email', address: 'y@example.org', room_id: '!r:hs.example', sender: '@someone-else:hs.example' }),
    );
    expect(notMine).toMatchObject({ status: 403, errcode: 'M_UNAUTHORIZED' });
    const noKey = await rejection(client.getPubKey('ed25519:nope'));
    expect(noKey).toMatchObject({ status: 404, errcode: 'M_NOT_FOUND', operation: 'getPubKey' });

    // logout forgets the token; the old token is refused afterwards
    const token = client.accessToken!;
    expect(await client.getAccount()).toBe(`@errors:${hs.serverName}`);
    await client.logout();
    expect(client.accessToken).toBeUndefined();
    const stale = createIdentityClient({ baseUrl: srv.url, accessToken: token });
    expect(await rejection(stale.getAccount())).toMatchObject({ status: 401, errcode: 'M_UNAUTHORIZED', operation: 'getAccount' });
  });

  it('reports an answer that is not a Matrix error as M_UNKNOWN with its status, and refuses a bad base URL', async () => {
    const proxy = createIdentityClient({
      baseUrl: 'https://identity.invalid',
      fetch: async () =>
        new Response('<html>Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html', 'retry-after': '7' } }),
    });
    const err = await rejection(proxy.ping());
    expect(err).toMatchObject({ status: 502, errcode: 'M_UNKNOWN', retryAfterSeconds: 7 });
    expect(() => createIdentityClient({ baseUrl: 'identity.example.org' })).toThrow(/absolute URL/);
    expect(() => createIdentityClient({ baseUrl: 'ftp://identity.example.org' })).toThrow(/http/);
  });
});
