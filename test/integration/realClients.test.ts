// Tessera driven by the clients that really call identity servers:
// - matrix-js-sdk (what Element and most Matrix clients use): its identity-server methods as a client calls them,
//   and binding through the homeserver path (`/account/3pid/bind`), answered here by a small client-server API
//   that forwards to Tessera's v2 bind the way Synapse's bind_threepid does;
// - Synapse's store-invite, replayed field for field as synapse/handlers/identity.py
//   (ask_id_server_for_third_party_invite) and room_member.py (_make_and_store_3pid_invite) build it: canonical
//   JSON, empty strings where the room has no such state, `null` where an event's content holds one, `room_type`
//   only for typed rooms, `org.matrix.web_client_location` when configured; then every field Synapse reads from
//   the answer, and the key-validity check its federation handler (_check_key_revocation) makes on join.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient, MatrixError as SdkError, SERVICE_TYPES, type MatrixClient } from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { testDatabases } from '../helpers/databases.js';
import type { TestServer } from '../helpers/server.js';
import { until, type TestSmtp } from '../helpers/smtp.js';
import { readInviteMail, readVerificationMail, verificationMailCount } from '../helpers/verificationMail.js';
import type { FakeHomeserver } from '../helpers/fakeHomeserver.js';
import type { OnbindEndpoint } from '../helpers/onbind.js';
import { startIdentityWorld, type IdentityWorld } from '../helpers/identityWorld.js';
import { canonical, verifyMatrixSignature } from '../helpers/signatures.js';

const TERMS_URL = 'https://is.test/terms-1-en.html';

let counter = 0;
const uniqueAddress = (tag: string) => `${tag}.${Date.now().toString(36)}${(counter++).toString(36)}@Example.org`;

sdkLogger.setLevel('silent');

interface ClientServerApi {
  url: string;
  /** Bind requests the client sent to the homeserver, as received. */
  binds: Record<string, unknown>[];
  stop(): Promise<void>;
}

/**
 * The homeserver's client-server API, as far as binding goes: POST /account/3pid/bind from the client, then the
 * v2 bind Synapse sends to the identity server it names ({sid, client_secret, mxid} with the client's identity
 * access token as a bearer token), answering the client `{}` or the identity server's error.
 */
async function startClientServerApi(userId: string): Promise<ClientServerApi> {
  const binds: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      void (async () => {
        const answer = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.method !== 'POST' || !/^\/_matrix\/client\/(v3|r0)\/account\/3pid\/bind$/.test(req.url ?? '')) {
          return answer(404, { errcode: 'M_UNRECOGNIZED', error: 'not in this fake' });
        }
        const body = JSON.parse(raw) as { sid: string; client_secret: string; id_server: string; id_access_token: string };
        binds.push(body);
        const is = await fetch(`http://${body.id_server}/_matrix/identity/v2/3pid/bind`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${body.id_access_token}` },
          body: JSON.stringify({ sid: body.sid, client_secret: body.client_secret, mxid: userId }),
        });
        return is.ok ? answer(200, {}) : answer(is.status, await is.json());
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    binds,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(testDatabases())('real clients on $name', (db) => {
  let world: IdentityWorld;
  let srv: TestServer;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let smtp: TestSmtp;
  let dispose: () => Promise<void>;
  const openIdFor = (localpart: string) => world.openIdFor(localpart);

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    world = await startIdentityWorld(created.url, TERMS_URL);
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

  describe('matrix-js-sdk', () => {
    let cs: ClientServerApi;
    let client: MatrixClient;
    let userId: string;

    beforeAll(async () => {
      userId = `@sdkuser:${hs.serverName}`;
      cs = await startClientServerApi(userId);
      client = createClient({ baseUrl: cs.url, idBaseUrl: srv.url, userId, accessToken: 'homeserver-access-token' });
    });
    afterAll(async () => {
      client?.stopClient();
      await cs?.stop();
    });

    it('registers with an OpenID token, accepts the terms, validates and binds an email, and finds it by hashed lookup', async () => {
      // register: the SDK posts the homeserver's OpenID token to /v2/account/register
      const { access_token: idToken, token } = await client.registerWithIdentityServer(openIdFor('sdkuser'));
      expect(idToken).toBe(token);
      expect(await client.getIdentityAccount(idToken)).toEqual({ user_id: userId });

      // terms, as Element's terms dialog fetches and accepts them
      const terms = (await client.getTerms(SERVICE_TYPES.IS, srv.url)) as { policies: Record<string, { en?: { url: string } }> };
      const urls = Object.values(terms.policies).map((p) => p.en!.url);
      expect(urls).toEqual([TERMS_URL]);
      await client.agreeToTerms(SERVICE_TYPES.IS, srv.url, idToken, urls);

      // the address: requestToken (the SDK sends send_attempt as a string), then the emailed link, opened as a person does
      const address = uniqueAddress('Sdk');
      const clientSecret = `sdk-secret-${counter++}`;
      const sent = verificationMailCount(smtp, address);
      const { sid } = await client.requestEmailToken(address, clientSecret, 1, undefined, idToken);
      expect(typeof sid).toBe('string');
      const again = await client.requestEmailToken(address, clientSecret, 1, undefined, idToken);
      expect(again.sid).toBe(sid);
      const mail = await readVerificationMail(smtp, address, { count: sent + 1 });
      const page = await fetch(mail.link);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);

      // bind through the homeserver, which forwards to Tessera's v2 bind
      await client.bindThreePid({ sid, client_secret: clientSecret, id_server: new URL(srv.url).host, id_access_token: idToken });
      expect(cs.binds).toHaveLength(1);

      // lookups: hash details, hashed lookup (sha256 chosen by the SDK), single and bulk (both hashed in the SDK)
      const details = await client.getIdentityHashDetails(idToken);
      expect(details.algorithms).toContain('sha256');
      expect(await client.identityHashedLookup([[address, 'email']], idToken)).toEqual([{ address, mxid: userId }]);
      expect(await client.lookupThreePid('email', address, idToken)).toEqual({ address, medium: 'email', mxid: userId });
      const bulk = await client.bulkLookupThreePids(
        [
          ['email', address],
          ['email', 'nobody@example.org'],
        ],
        idToken,
      );
      expect(bulk.threepids).toEqual([['email', address, userId]]);
    });

    it('surfaces Tessera errors as the SDK own MatrixError, with the errcode', async () => {
      const err = await client.getIdentityAccount('not-a-token').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SdkError);
      expect(err).toMatchObject({ errcode: 'M_UNAUTHORIZED', httpStatus: 401 });
      const { access_token: idToken } = await client.registerWithIdentityServer(openIdFor('sdk-newcomer'));
      const lookup = await client.identityHashedLookup([['someone@example.org', 'email']], idToken).then(
        () => undefined,
        (e: unknown) => e,
      );
      // a user who has not accepted the terms: lookups need them
      expect(lookup).toMatchObject({ errcode: 'M_TERMS_NOT_SIGNED', httpStatus: 403 });
      // send_attempt comes as a string from the SDK: beyond a 32-bit integer it is refused, not wrapped
      await client.agreeToTerms(SERVICE_TYPES.IS, srv.url, idToken, [TERMS_URL]);
      const huge = await client.requestEmailToken('sdk-huge@example.org', 'sdk-secret-huge', 9_999_999_999, undefined, idToken).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(huge).toMatchObject({ errcode: 'M_INVALID_PARAM', httpStatus: 400 });
    });
  });

  describe("Synapse's store-invite", () => {
    /** What Synapse sends: canonical JSON, `Content-Type: application/json`, and the bearer token on v2. */
    const synapsePost = async (path: string, body: Record<string, unknown>, token?: string) => {
      const res = await fetch(`${srv.url}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Synapse/1.140.0',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: Buffer.from(canonical(body), 'utf8'),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };

    /** _check_key_revocation: GET key_validity_url?public_key=..., and the key is good only when `valid` is true. */
    const synapseChecksKey = async (url: string, publicKey: string) => {
      const res = await fetch(`${url}?${new URLSearchParams({ public_key: publicKey }).toString()}`);
      const body = (await res.json()) as { valid?: unknown };
      return res.status === 200 && body.valid === true;
    };

    const register = async (localpart: string): Promise<string> => {
      const res = await fetch(`${srv.url}/_matrix/identity/v2/account/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(openIdFor(localpart)),
      });
      const { token } = (await res.json()) as { token: string };
      const accepted = await fetch(`${srv.url}/_matrix/identity/v2/terms`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ user_accepts: [TERMS_URL] }),
      });
      expect(accepted.status).toBe(200);
      return token;
    };

    const rooms: [string, (address: string, sender: string) => Record<string, unknown>][] = [
      [
        'a named, public space with an alias, avatars and a web client location',
        (address, sender) => ({
          medium: 'email',
          address,
          room_id: '!space:hs.example',
          room_alias: '#garden:hs.example',
          room_avatar_url: 'mxc://hs.example/roomavatar',
          room_join_rules: 'public',
          room_name: 'Tea ☕ garden',
          sender,
          sender_display_name: 'Alice « the host »',
          sender_avatar_url: 'mxc://hs.example/alice',
          room_type: 'm.space',
          'org.matrix.web_client_location': 'https://app.element.io',
        }),
      ],
      [
        'a room with no name, alias, avatar or join rules state (empty strings) and no display name (the user id)',
        (address, sender) => ({
          medium: 'email',
          address,
          room_id: '!bare:hs.example',
          room_alias: '',
          room_avatar_url: '',
          room_join_rules: '',
          room_name: '',
          sender,
          sender_display_name: sender,
          sender_avatar_url: '',
        }),
      ],
      [
        'state events whose content holds nulls',
        (address, sender) => ({
          medium: 'email',
          address,
          room_id: '!nulls:hs.example',
          room_alias: null,
          room_avatar_url: null,
          room_join_rules: 'invite',
          room_name: null,
          sender,
          sender_display_name: null,
          sender_avatar_url: null,
        }),
      ],
    ];

    it.each(rooms)('stores the v2 invitation for %s, answering every field Synapse reads', async (_what, build) => {
      const sender = `@alice:${hs.serverName}`;
      const token = await register('alice');
      const address = uniqueAddress('Synapse');
      const res = await synapsePost('/_matrix/identity/v2/store-invite', build(address, sender), token);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const data = res.body;

      // token = data["token"]; public_keys = data.get("public_keys", []); data["public_key"]; data["display_name"]
      expect(typeof data.token).toBe('string');
      expect(data.token.length).toBeGreaterThan(0);
      expect(Array.isArray(data.public_keys)).toBe(true);
      expect(data.public_keys.length).toBeGreaterThanOrEqual(2);
      expect(typeof data.public_key).toBe('string');
      expect(data.public_keys.map((k: { public_key: string }) => k.public_key)).toContain(data.public_key);
      expect(typeof data.display_name).toBe('string');
      expect(data.display_name).not.toContain(address.split('@')[0]!);
      for (const key of data.public_keys as { public_key: string; key_validity_url: string }[]) {
        const url = new URL(key.key_validity_url); // absolute, or Synapse could not call it from other servers
        expect(url.origin).toBe(srv.url);
        expect(url.pathname.startsWith('/_matrix/identity/v2/pubkey/')).toBe(true);
        expect(await synapseChecksKey(key.key_validity_url, key.public_key)).toBe(true);
      }
      // the fallback Synapse builds itself from the server name: <scheme><id_server>/_matrix/identity/v2/pubkey/isvalid
      expect(await synapseChecksKey(`${srv.url}/_matrix/identity/v2/pubkey/isvalid`, data.public_key)).toBe(true);

      // the invitation email names the room and the inviter when Synapse sent them
      const invitation = build(address, sender);
      const mail = await readInviteMail(smtp, address);
      const text = mail.mail.parsed.text ?? '';
      if (invitation.room_name) expect(text).toContain(invitation.room_name as string);
      if (typeof invitation.sender_display_name === 'string' && invitation.sender_display_name !== sender) {
        expect(text).toContain(invitation.sender_display_name);
      }
    });

    it('stores the same invitation over v1, without a token, as Synapse did before v2', async () => {
      const sender = '@alice:hs.example';
      const address = uniqueAddress('SynapseV1');
      const v1Body = { ...rooms[1]![1](address, sender) };
      const res = await synapsePost('/_matrix/identity/api/v1/store-invite', v1Body);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const key of res.body.public_keys as { public_key: string; key_validity_url: string }[]) {
        expect(new URL(key.key_validity_url).pathname.startsWith('/_matrix/identity/api/v1/pubkey/')).toBe(true);
        expect(await synapseChecksKey(key.key_validity_url, key.public_key)).toBe(true);
      }
    });

    it('delivers the invitation, signed with a key Synapse got from store-invite, when the address is bound', async () => {
      const sender = `@alice:${hs.serverName}`;
      const token = await register('alice');
      const address = uniqueAddress('SynapseBind');
      const stored = (await synapsePost('/_matrix/identity/v2/store-invite', rooms[0]![1](address, sender), token)).body;

      // the invitee validates and binds the address (v1, as an older client would)
      const clientSecret = `s-${counter++}`;
      const sent = verificationMailCount(smtp, address);
      const requested = await srv.call('POST', '/_matrix/identity/api/v1/validate/email/requestToken', {
        client_secret: clientSecret,
        email: address,
        send_attempt: 1,
      });
      const { token: code } = await readVerificationMail(smtp, address, { count: sent + 1 });
      await srv.call('POST', '/_matrix/identity/api/v1/validate/email/submitToken', {
        sid: requested.body.sid,
        client_secret: clientSecret,
        token: code,
      });
      const mxid = `@invitee:${hs.serverName}`;
      const bound = await srv.call('POST', '/_matrix/identity/api/v1/3pid/bind', {
        sid: requested.body.sid,
        client_secret: clientSecret,
        mxid,
      });
      expect(bound.status, JSON.stringify(bound.body)).toBe(200);

      await onbind.waitForCalls(1);
      const invite = onbind.calls[0]!.body.invites.find((i: { token: string }) => i.token === stored.token);
      expect(invite).toMatchObject({ room_id: '!space:hs.example', sender, mxid, token: stored.token });
      // event_auth: the signed block must verify with one of the public keys of the third-party invite event
      const keys = (stored.public_keys as { public_key: string }[]).map((k) => k.public_key);
      const keyId = Object.keys(invite.signed.signatures['is.test'])[0]!;
      expect(keys.some((k) => verifyMatrixSignature(invite.signed, 'is.test', keyId, k))).toBe(true);
      await until(
        async () => (await srv.call('GET', `/_matrix/identity/v2/pubkey/isvalid?public_key=${encodeURIComponent(keys[0]!)}`)).body.valid,
        5_000,
      );
    });
  });
});
