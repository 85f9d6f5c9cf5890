// Moving from Sydent: a Sydent-layout database (test/helpers/sydentDb.ts) imported by the real command in its own
// process, then Tessera started on the result and driven over HTTP as homeservers and clients would.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, type TestSmtp } from '../helpers/smtp.js';
import { readVerificationMail } from '../helpers/verificationMail.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { routeOnbind, type OnbindEndpoint } from '../helpers/onbind.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';
import { ROOT } from '../helpers/process.js';
import { writeSydent, type SydentFixture } from '../helpers/sydentDb.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';
import { parseSigningKey } from '../../src/keys/KeyRing.js';
import { encodeUnpadded, encodeUrlSafe } from '../../src/platform/base64.js';

const exec = promisify(execFile);
const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const DAY_S = 24 * 3600;
const nowS = () => Math.floor(Date.now() / 1000);

/** Runs the import command as its own process against `dbUrl` and `dataDir`. */
const importSydent = (fixture: { configFile: string }, dbUrl: string, dataDir: string, ...args: string[]) =>
  exec(
    process.execPath,
    [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/sydent/cli.ts'), '--sydent-config', fixture.configFile, ...args],
    {
      env: { PATH: process.env.PATH ?? '', TESSERA_DATABASE_URL: dbUrl, TESSERA_DATA_DIR: dataDir },
    },
  ).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

describe.each(testDatabases())('importing Sydent into $name', (db) => {
  let dir: string;
  let fixture: SydentFixture;
  let url: string;
  let dataDir: string;
  let dispose: () => Promise<void>;
  let srv: TestServer | undefined;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let smtp: TestSmtp;
  const ephemeral = generateKeyPair();
  const ephemeralPublic = encodeUrlSafe(ephemeral.publicKey);
  const expiredKey = encodeUrlSafe(generateKeyPair().publicKey);
  let firstImport: { code: number; out: string; err: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-sydent-'));
    dataDir = join(dir, 'tessera-data');
    hs = await startFakeHomeserver();
    onbind = routeOnbind(hs);
    smtp = await startSmtp();
    const created = await db.create();
    url = created.url;
    dispose = created.dispose;
    const now = nowS();
    fixture = writeSydent(join(dir, 'sydent'), (s) => {
      const local = s.prepare(
        'INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const aliceId = local.run(
        'email',
        'Alice@Example.org',
        '@alice:hs.example',
        1_600_000_000_000,
        1_600_000_000_000,
        4_000_000_000_000,
      ).lastInsertRowid;
      local.run('email', 'removed@example.org', null, null, null, null);
      local.run('email', 'bob@example.org', '@old-bob:hs.example', 1_600_000_000_000, 1_600_000_000_000, 4_000_000_000_000);
      local.run('email', 'BOB@example.org', '@bob:hs.example', 1_700_000_000_000, 1_700_000_000_000, 4_000_000_000_000);
      const global = s.prepare(
        'INSERT INTO global_threepid_associations (medium, address, mxid, ts, notBefore, notAfter, originServer, originId, sgAssoc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      global.run(
        'email',
        'alice@example.org',
        '@alice:hs.example',
        1_600_000_000_000,
        1_600_000_000_000,
        4_000_000_000_000,
        'sydent.example',
        aliceId,
        '{}',
      );
      global.run(
        'email',
        'peer@example.org',
        '@peer:hs.example',
        1_600_000_000_000,
        1_600_000_000_000,
        4_000_000_000_000,
        'peer.example',
        7,
        '{}',
      );
      const invite = s.prepare(
        'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      invite.run('email', 'Carol@Example.org', '!tea:hs.example', '@alice:hs.example', 'pendingTokenFromSydent', now - 3600, null);
      invite.run('email', 'carol@example.org', '!old:hs.example', '@alice:hs.example', 'deliveredTokenFromSydent', now - 7200, now - 60);
      invite.run(
        'email',
        'carol@example.org',
        '!ancient:hs.example',
        '@alice:hs.example',
        'expiredTokenFromSydent',
        now - 200 * DAY_S,
        null,
      );
      invite.run('email', 'erin@example.org', '!abuse:hs.example', '@spammer:hs.example', 'revocableTokenFromSydent', now - 60, null);
      const key = s.prepare('INSERT INTO ephemeral_public_keys (public_key, verify_count, persistence_ts) VALUES (?, 0, ?)');
      key.run(ephemeralPublic, now - 3600);
      key.run(expiredKey, now - 200 * DAY_S);
      s.prepare('INSERT INTO accounts (user_id, created_ts, consent_version) VALUES (?, ?, ?)').run(
        '@alice:hs.example',
        Date.now() - 1000,
        null,
      );
      s.prepare('INSERT INTO tokens (token, user_id) VALUES (?, ?)').run('sydentAccessToken', '@alice:hs.example');
      s.prepare('INSERT INTO accepted_terms_urls (user_id, url) VALUES (?, ?)').run(
        '@alice:hs.example',
        'https://sydent.example/terms-1.0-en.html',
      );
      s.prepare('INSERT INTO accepted_terms_urls (user_id, url) VALUES (?, ?)').run(
        '@alice:hs.example',
        'https://sydent.example/gone.html',
      );
      s.prepare('INSERT INTO threepid_validation_sessions (medium, address, clientSecret, validated, mtime) VALUES (?, ?, ?, ?, ?)').run(
        'email',
        'dave@example.org',
        'secret',
        0,
        Date.now(),
      );
    });
    firstImport = await importSydent(fixture, url, dataDir);
  });
  afterAll(async () => {
    try {
      await settle([() => srv?.stop(), () => hs?.stop(), () => smtp?.stop()]);
    } finally {
      await dispose?.();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('imports every table, reports what it skipped and why, and prints a configuration for the deployment', () => {
    expect(firstImport.code, firstImport.err).toBe(0);
    const lines = firstImport.err.split('\n');
    const row = (table: string) => lines.find((l) => l.startsWith(table))!;
    expect(row('associations')).toMatch(
      /^associations\s+6\s+2\s+0\s+1 removed binding.*1 same address in another letter case.*1 this server's own.*1 replicated from a peer/,
    );
    expect(row('invites')).toMatch(/^invites\s+4\s+2\s+0\s+1 already delivered by onbind; 1 expired/);
    expect(row('ephemeral keys')).toMatch(/^ephemeral keys\s+2\s+1\s+0\s+1 expired/);
    expect(row('access tokens')).toMatch(/^access tokens\s+1\s+1\s+0/);
    expect(row('accepted terms')).toMatch(/^accepted terms\s+2\s+1\s+0\s+1 URL of no policy/);
    expect(row('validation sessions')).toMatch(/^validation sessions\s+1\s+0\s+0\s+1 not carried over/);
    expect(firstImport.err).toMatch(/signing key ed25519:0 .*written to .*signing\.key; lookup pepper: imported/);
    expect(firstImport.err).toContain('import complete');
    const config = parse(firstImport.out) as Record<string, any>;
    expect(config.server).toEqual({ name: 'sydent.example', publicBaseUrl: 'https://sydent.example' });
    expect(config.mail).toMatchObject({
      from: 'Sydent Validation <noreply@sydent.example>',
      smtp: { host: 'smtp.example', port: 587, tls: 'starttls' },
      templatesDir: join(fixture.dir, 'res'),
      brand: 'matrix-org',
    });
    expect(config.terms).toEqual({ file: join(fixture.dir, 'terms.yaml') });
    expect(config.invites.blockedServers).toEqual(['evil.example', 'worse.example']);
    expect(readFileSync(join(dataDir, 'signing.key'), 'utf8').trim()).toBe(fixture.keyText);
  });

  it('serves what Sydent served: lookups with the same key and pepper, ephemeral keys, sign-ed25519, tokens', async () => {
    srv = await startTestServer({
      dbUrl: url,
      dataDir,
      overrides: {
        ...smtpConfig(smtp.port),
        server: { name: 'sydent.example' },
        terms: { file: join(fixture.dir, 'terms.yaml') },
        federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
        onbind: { initialBackoffMs: 20, maxBackoffMs: 200, pollIntervalMs: 100 },
      },
    });
    const sydentKey = encodeUnpadded(parseSigningKey(fixture.keyText).pair.publicKey);
    expect((await srv.call('GET', `${V2}/pubkey/ed25519:0`)).body).toEqual({ public_key: sydentKey });

    const alice = await srv.call('GET', `${V1}/lookup?medium=email&address=ALICE@example.org`);
    expect(alice.body).toMatchObject({ mxid: '@alice:hs.example', address: 'alice@example.org', ts: 1_600_000_000_000 });
    expect(verifyMatrixSignature(alice.body, 'sydent.example', 'ed25519:0', sydentKey)).toBe(true);
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=bob@example.org`)).body.mxid).toBe('@bob:hs.example');
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=removed@example.org`)).body).toEqual({});
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=peer@example.org`)).body).toEqual({});
    const bulk = await srv.call('POST', `${V1}/bulk_lookup`, {
      threepids: [
        ['email', 'alice@example.org'],
        ['email', 'bob@example.org'],
      ],
    });
    expect(bulk.body.threepids).toEqual(
      expect.arrayContaining([
        ['email', 'alice@example.org', '@alice:hs.example'],
        ['email', 'bob@example.org', '@bob:hs.example'],
      ]),
    );

    // the v2 user keeps the token Sydent issued, the terms it accepted, and the pepper its client cached
    const bearer = { authorization: 'Bearer sydentAccessToken' };
    expect((await srv.call('GET', `${V2}/account`, undefined, bearer)).body).toEqual({ user_id: '@alice:hs.example' });
    const details = await srv.call('GET', `${V2}/hash_details`, undefined, bearer);
    expect(details.body.lookup_pepper).toBe(fixture.pepper);
    const hash = createHash('sha256').update(`alice@example.org email ${fixture.pepper}`).digest('base64url');
    const hashed = await srv.call('POST', `${V2}/lookup`, { addresses: [hash], algorithm: 'sha256', pepper: fixture.pepper }, bearer);
    expect(hashed.body).toEqual({ mappings: { [hash]: '@alice:hs.example' } });

    // the ephemeral keys homeservers hold still answer valid; sign-ed25519 works with the emailed private key
    expect((await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${ephemeralPublic}`)).body).toEqual({ valid: true });
    expect((await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${expiredKey}`)).body).toEqual({ valid: false });
    const signed = await srv.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@carol:hs.example',
      token: 'pendingTokenFromSydent',
      private_key: encodeUnpadded(ephemeral.seed),
    });
    expect(signed.status, JSON.stringify(signed.body)).toBe(200);
    expect(verifyMatrixSignature(signed.body, 'sydent.example', 'ed25519:0', ephemeralPublic)).toBe(true);
    const forged = await srv.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@carol:hs.example',
      token: 'pendingTokenFromSydent',
      private_key: encodeUnpadded(generateKeyPair().seed),
    });
    expect(forged.status).toBe(403);
    expect(srv.violations.splice(0)).toEqual([]);
  });

  it('delivers an imported pending invitation, signed, when its address is bound', async () => {
    const requested = await srv!.call('POST', `${V1}/validate/email/requestToken`, {
      client_secret: 'cs',
      email: 'carol@example.org',
      send_attempt: 1,
    });
    const { token } = await readVerificationMail(smtp, 'carol@example.org');
    await srv!.call('POST', `${V1}/validate/email/submitToken`, { sid: requested.body.sid, client_secret: 'cs', token });
    const mxid = `@carol:${hs.serverName}`;
    const bound = await srv!.call('POST', `${V1}/3pid/bind`, { sid: requested.body.sid, client_secret: 'cs', mxid });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    await onbind.waitForCalls(1);
    const invites = onbind.calls[0]!.body.invites as { token: string; room_id: string; sender: string; signed: unknown }[];
    expect(invites.map((i) => i.token)).toEqual(['pendingTokenFromSydent']);
    expect(invites[0]).toMatchObject({ room_id: '!tea:hs.example', sender: '@alice:hs.example' });
    const sydentKey = encodeUnpadded(parseSigningKey(fixture.keyText).pair.publicKey);
    expect(verifyMatrixSignature(invites[0]!.signed, 'sydent.example', 'ed25519:0', sydentKey)).toBe(true);
    expect(onbind.violations()).toEqual([]);
    expect(srv!.violations.splice(0)).toEqual([]);
  });

  it('revokes an imported invitation with the operator command, saying its key cannot be told apart', async () => {
    const revoked = await exec(
      process.execPath,
      [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/tessera.ts'), 'invites', 'revoke', 'revocableTokenFromSydent'],
      {
        env: { PATH: process.env.PATH ?? '', TESSERA_DATABASE_URL: url, TESSERA_DATA_DIR: dataDir, TESSERA_SERVER_NAME: 'sydent.example' },
      },
    );
    expect(revoked.stdout).toContain('imported from Sydent');
    const signed = await srv!.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@erin:hs.example',
      token: 'revocableTokenFromSydent',
      private_key: encodeUnpadded(ephemeral.seed),
    });
    expect(signed.status).toBe(404);
    expect(srv!.violations.splice(0)).toEqual([]);
  });

  it('changes nothing on a second run, and says so', async () => {
    const again = await importSydent(fixture, url, dataDir);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain('nothing to import: Tessera already holds all of it');
    expect(again.err).toMatch(/^associations\s+6\s+0\s+2/m);
    expect(again.err).toMatch(
      /^invites\s+4\s+0\s+1\s+1 already delivered by onbind; 1 expired under invites.lifetimeMs; 1 revoked by an operator/m,
    );
  });

  it('refuses bad input with a clear message and writes nothing', async () => {
    const counts = async () => {
      const out: number[] = [];
      for (const t of ['associations', 'invites', 'ephemeral_keys', 'account_tokens', 'accepted_terms']) {
        out.push(Number(((await srv!.service.db.knex(t).count({ n: '*' })) as { n: number }[])[0]!.n));
      }
      return out;
    };
    const before = await counts();

    // another Sydent whose rows clash with what was imported, signing with the same key
    const clash = writeSydent(join(dir, 'clash'), (s) => {
      s.prepare('INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)').run(
        'email',
        'new@example.org',
        '@new:hs.example',
        1,
        1,
        4_000_000_000_000,
      );
      s.prepare(
        'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run('email', 'zed@example.org', '!elsewhere:hs.example', '@alice:hs.example', 'pendingTokenFromSydent', nowS(), null);
    });
    writeFileSync(clash.configFile, readFileSync(clash.configFile, 'utf8').replace(clash.keyText, fixture.keyText));
    const conflict = await importSydent(clash, url, dataDir);
    expect(conflict.code).toBe(1);
    expect(conflict.err).toContain("Tessera's database already holds different data for 1 row(s); nothing was written");
    expect(conflict.err).toContain('invites: Tessera already holds invitation');

    // another signing key than the one Tessera has
    const otherKey = writeSydent(join(dir, 'other-key'), () => {});
    expect(await importSydent(otherKey, url, dataDir)).toMatchObject({
      code: 1,
      err: expect.stringContaining("holds another signing key than Sydent's"),
    });

    // not a Sydent database; a schema this importer does not know
    const notSydent = join(dir, 'not-sydent.db');
    new BetterSqlite3(notSydent).exec('CREATE TABLE something (id integer)');
    expect(await importSydent(fixture, url, dataDir, '--sydent-db', notSydent)).toMatchObject({
      code: 1,
      err: expect.stringContaining('is not a Sydent database: no invite_tokens'),
    });
    const oldSchema = writeSydent(join(dir, 'old'), () => {}, { userVersion: 3 });
    expect(await importSydent(oldSchema, url, dataDir)).toMatchObject({ code: 1, err: expect.stringContaining('schema version 3') });
    expect(await importSydent({ configFile: join(dir, 'missing.conf') }, url, dataDir)).toMatchObject({ code: 1 });

    expect(await counts()).toEqual(before);
  });

  it('reports without writing on --dry-run', async () => {
    const fresh = await db.create();
    const freshData = join(dir, 'dry-data');
    try {
      const dry = await importSydent(fixture, fresh.url, freshData, '--dry-run');
      expect(dry.code, dry.err).toBe(0);
      expect(dry.err).toContain('dry run: nothing was written');
      expect(dry.err).toMatch(/^associations\s+6\s+2\s+0/m);
      expect(dry.err).toContain('would be written to');
      const again = await importSydent(fixture, fresh.url, freshData, '--dry-run');
      expect(again.err).toMatch(/^associations\s+6\s+2\s+0/m); // still nothing there
    } finally {
      await fresh.dispose();
    }
  });
});
