// A real Tessera process logging to a pipe (as under a process manager or in a container): every line is one JSON
// object, the lines written while a request is handled carry its request id (the proxy's, when trusted), and no line
// holds a token, a key, a client secret or a full address.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { processEnv, spawnTessera, type TesseraProcess } from '../helpers/process.js';
import { startSmtp, until, type TestSmtp } from '../helpers/smtp.js';
import { readVerificationMail, sentTo } from '../helpers/verificationMail.js';
import { parseLog, type LogLine } from '../helpers/logs.js';
import { testDatabases } from '../helpers/databases.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

describe('logs of a real process', () => {
  const cleanup: (() => Promise<unknown> | void)[] = [];
  afterAll(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  it('writes JSON lines naming each request, and never a secret or a full address', { timeout: 120_000 }, async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    cleanup.push(dispose);
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-logs-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const smtp: TestSmtp = await startSmtp();
    cleanup.push(() => smtp.stop());
    const { env, base } = await processEnv({ dbUrl: url, dataDir, smtpPort: smtp.port });
    // Debug: every request's own line too, so the scan below covers as much as Tessera ever writes.
    const proc: TesseraProcess = spawnTessera({ ...env, TESSERA_SERVER_TRUST_PROXY: 'true', TESSERA_LOG_LEVEL: 'debug' });
    cleanup.push(() => void proc.child.kill('SIGKILL'));
    await proc.waitFor(/tessera listening/, 60_000);

    const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      const json = res.headers.get('content-type')?.startsWith('application/json');
      return { status: res.status, id: res.headers.get('x-request-id')!, body: json ? (JSON.parse(text) as Record<string, any>) : {} };
    };
    const viaProxy = (id: string) => ({ 'x-request-id': id, 'x-forwarded-for': '203.0.113.7' });

    // An invitation, through a trusted proxy that names the request.
    const invitee = 'invitee.hidden@example.org';
    const stored = await call(
      'POST',
      `${V1}/store-invite`,
      { medium: 'email', address: invitee, room_id: '!room:hs.example', sender: '@alice:hs.example' },
      viaProxy('lb-invite-0001'),
    );
    expect(stored.status).toBe(200);
    expect(stored.id).toBe('lb-invite-0001');
    const inviteMail = await until(() => sentTo(smtp, invitee)[0], 15_000, 'the invitation email');
    const privateKey = /private_key(?:=|%3D)([A-Za-z0-9_-]{43})/.exec(inviteMail.parsed.text ?? '')?.[1];
    expect(privateKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const signed = await call('POST', `${V1}/sign-ed25519`, {
      mxid: '@invitee:hs.example',
      token: stored.body.token,
      private_key: privateKey,
    });
    expect(signed.status).toBe(200);

    // Without an id of its own: Tessera makes one, and a malformed one from the proxy is replaced.
    const plain = await call(
      'GET',
      `${V1}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(stored.body.public_keys[1].public_key)}`,
    );
    expect(plain.id).toMatch(/^[A-Za-z0-9_-]+-[0-9a-z]+$/);
    const malformed = await call('GET', `${V2}`, undefined, viaProxy('not an id {"level":"error"}'));
    expect(malformed.id).toMatch(/^[A-Za-z0-9_-]+-[0-9a-z]+$/);

    // Validation: a client secret and the emailed token travel in bodies and query strings.
    const verified = 'verified.hidden@example.org';
    const clientSecret = 'cs-LogsMustNeverShowThis-0123456789';
    const session = await call('POST', `${V1}/validate/email/requestToken`, {
      client_secret: clientSecret,
      email: verified,
      send_attempt: 1,
    });
    expect(session.status).toBe(200);
    const { token: validationToken } = await readVerificationMail(smtp, verified);
    const q = new URLSearchParams({ token: validationToken, client_secret: clientSecret, sid: session.body.sid });
    expect((await call('GET', `${V1}/validate/email/submitToken?${q.toString()}`)).status).toBe(200);

    // Credentials that are refused: a made-up access token (header and query) and a homeserver signature whose origin
    // is no server name. The latter is logged (INFO), inside its request.
    const accessToken = 'syt_LogsMustNeverShowThisToken_0123456789';
    expect((await call('GET', `${V2}/account`, undefined, { authorization: `Bearer ${accessToken}` })).status).toBe(401);
    expect((await call('GET', `${V2}/account?access_token=${accessToken}`)).status).toBe(401);
    const unbound = 'unbind.hidden@example.org';
    const refused = await call(
      'POST',
      `${V2}/3pid/unbind`,
      { mxid: '@someone:hs.example', threepid: { medium: 'email', address: unbound } },
      { ...viaProxy('lb-unbind-0002'), authorization: `X-Matrix origin="bad host",key="ed25519:a",sig="${'A'.repeat(86)}"` },
    );
    expect(refused.status).toBe(403);

    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);

    // Every line is one JSON object with a level, a time and a message; nothing else reaches stdout or stderr.
    const raw = proc.output();
    const lines: LogLine[] = raw
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        expect(() => JSON.parse(l) as unknown, l).not.toThrow();
        return parseLog(l);
      });
    for (const l of lines) {
      expect(['debug', 'info', 'warn', 'error']).toContain(l.level);
      expect(Date.parse(l.time)).not.toBeNaN();
      expect(typeof l.msg).toBe('string');
    }
    expect(lines.some((l) => l.msg === 'tessera listening')).toBe(true);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);

    // A request's lines carry its id; background work (the mail worker) carries none.
    const of = (id: string) => lines.filter((l) => l.request_id === id);
    expect(of('lb-invite-0001').map((l) => l.msg)).toEqual(expect.arrayContaining(['stored invitation', 'request']));
    expect(of(plain.id).map((l) => l.msg)).toEqual(['request']);
    expect(of(malformed.id).map((l) => l.msg)).toEqual(['request']);
    expect(of('lb-unbind-0002')).toEqual(
      expect.arrayContaining([expect.objectContaining({ level: 'info', msg: 'X-Matrix request refused', op: 'unbindV2' })]),
    );
    expect(lines.filter((l) => l.msg === 'request' && l.request_id === undefined)).toEqual([]);
    const mailLines = lines.filter((l) => l.msg === 'mail sent');
    expect(mailLines).toHaveLength(2);
    for (const l of mailLines) expect(l.request_id).toBeUndefined();

    // Nothing secret, in any line.
    const seed = readFileSync(join(dataDir, 'signing.key'), 'utf8').trim().split(/\s+/)[2]!;
    const secrets = {
      'invitation token': stored.body.token as string,
      'ephemeral private key': privateKey!,
      'signing key seed': seed,
      'client secret': clientSecret,
      'validation token': validationToken,
      'access token': accessToken,
      'invitee address': invitee,
      'verified address': verified,
      'unbound address': unbound,
      'invitee local part': 'invitee.hidden',
      'verified local part': 'verified.hidden',
      'unbound local part': 'unbind.hidden',
    };
    for (const [what, value] of Object.entries(secrets)) expect(raw.includes(value), `${what} in the log`).toBe(false);
    // what the log shows of an address instead
    expect(mailLines.map((l) => l.to).sort()).toEqual(['i***@e***', 'v***@e***']);
  });
});
