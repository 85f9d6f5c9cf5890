// The Sydent import's pure parts: reading Sydent's INI configuration as configparser does, the signing-key
// decision, and the progress display.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { iniValue, parseIni } from '../../src/sydent/ini.js';
import { planSigningKey, sydentKey } from '../../src/sydent/config.js';
import { progressOn } from '../../src/sydent/cli.js';
import { loadConfig } from '../../src/platform/config.js';
import { formatSigningKey } from '../../src/keys/KeyRing.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';
import type { SigningKeyRecord } from '../../src/keys/SigningKeyStore.js';

describe("Sydent's INI configuration", () => {
  const ini = parseIni(
    [
      '# Sydent saves its defaults in [DEFAULT] when it writes the file',
      '[DEFAULT]',
      'templates.path = res',
      'email.smtpport = 25',
      'email.invite.subject = %(sender_display_name)s has invited you to chat',
      '',
      '[email]',
      'Email.SMTPPort: 587',
      'email.smtppassword = 50%% off',
      'email.from = %(email.user)s@example.org',
      'email.user = sydent',
      '; another comment',
      'email.third_party_invite_room_blocklist = !a:hs.example',
      '    !b:hs.example',
      'email.empty =',
    ].join('\n'),
  );

  it('reads a section first, then [DEFAULT]; keys in any case', () => {
    expect(iniValue(ini, 'email', 'email.smtpport')).toBe('587');
    expect(iniValue(ini, 'general', 'templates.path')).toBe('res');
    expect(iniValue(ini, 'general', 'server.name')).toBeUndefined();
    expect(iniValue(ini, 'email', 'email.empty')).toBeUndefined();
  });

  it('interpolates %% and %(name)s, except where Sydent reads the value raw', () => {
    expect(iniValue(ini, 'email', 'email.smtppassword')).toBe('50% off');
    expect(iniValue(ini, 'email', 'email.from')).toBe('sydent@example.org');
    expect(iniValue(ini, 'email', 'email.invite.subject', { raw: true })).toBe('%(sender_display_name)s has invited you to chat');
    expect(() => iniValue(ini, 'email', 'email.invite.subject')).toThrow('%(sender_display_name)s names no setting');
  });

  it('continues values on indented lines, and names the line it cannot read', () => {
    expect(iniValue(ini, 'email', 'email.third_party_invite_room_blocklist')).toBe('!a:hs.example\n!b:hs.example');
    expect(() => parseIni('[general]\nserver.name = a\nnot a setting')).toThrow('line 3');
    expect(() => parseIni('server.name = a')).toThrow('line 1');
  });
});

describe('the signing key an import adopts', () => {
  const keyText = formatSigningKey('0', generateKeyPair().seed);
  const key = sydentKey(keyText);
  const otherText = formatSigningKey('0', generateKeyPair().seed);
  const record = (r: Partial<SigningKeyRecord>): SigningKeyRecord => ({
    keyId: key.keyId,
    publicKey: key.publicKey,
    createdAt: 1,
    retiredAt: null,
    validUntil: null,
    ...r,
  });
  const withFile = (text: string | undefined, run: (config: ReturnType<typeof loadConfig>) => void) => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-key-'));
    try {
      if (text) writeFileSync(join(dir, 'signing.key'), text);
      run(loadConfig({ argv: [], env: {}, overrides: { dataDir: dir } }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("writes Sydent's key where Tessera has none, and nothing where it already has it", () => {
    withFile(undefined, (config) => {
      expect(planSigningKey(config, key, []).write).toEqual({ file: config.keys.signingKeyFile, text: `${keyText.trim()}\n` });
      expect(planSigningKey(config, key, [record({})]).write).toBeDefined();
    });
    withFile(keyText, (config) =>
      expect(planSigningKey(config, key, [record({})])).toEqual({ outcome: expect.stringContaining('already') }),
    );
  });

  it("refuses another key in the file, in keys.signingKey or in the database's records", () => {
    withFile(otherText, (config) => expect(() => planSigningKey(config, key, [])).toThrow("holds another signing key than Sydent's"));
    const inline = loadConfig({ argv: [], env: {}, overrides: { keys: { signingKey: otherText.trim() } } });
    expect(() => planSigningKey(inline, key, [])).toThrow("keys.signingKey is not Sydent's signing key");
    withFile(undefined, (config) => {
      expect(() => planSigningKey(config, key, [record({ publicKey: sydentKey(otherText).publicKey })])).toThrow(
        'records another public key under ed25519:0',
      );
      expect(() => planSigningKey(config, key, [record({ keyId: 'ed25519:1', publicKey: 'x' })])).toThrow(
        'records ed25519:1 as its signing key',
      );
    });
  });

  it("accepts Sydent's key rotated out by Tessera after an earlier import", () => {
    withFile(otherText, (config) => {
      const plan = planSigningKey(config, key, [
        record({ retiredAt: 2, validUntil: 3 }),
        record({ keyId: 'ed25519:1', publicKey: sydentKey(otherText).publicKey }),
      ]);
      expect(plan.write).toBeUndefined();
      expect(plan.outcome).toContain('rotated out');
    });
  });
});

describe('progress', () => {
  it('on a terminal, rewrites one line holding every table written so far', () => {
    const writes: string[] = [];
    const lines: string[] = [];
    const p = progressOn({ out: () => {}, err: (s) => lines.push(s), tty: true }, (s) => writes.push(s));
    p.phase('writing');
    p.rows('associations', 1000, 2000);
    p.rows('associations', 2000, 2000);
    p.rows('invites', 5, 5);
    p.end();
    expect(lines).toEqual([]);
    expect(writes.every((w) => w.startsWith('\r\x1b[K'))).toBe(true);
    expect(writes.at(-2)).toBe('\r\x1b[Kwriting: associations 2000/2000 · invites 5/5');
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('elsewhere, prints plain lines: each phase, each finished table, every ten batches', () => {
    const lines: string[] = [];
    const p = progressOn({ out: () => {}, err: (s) => lines.push(s), tty: false }, () => {
      throw new Error('no terminal codes off a terminal');
    });
    p.phase('writing');
    for (let done = 1000; done <= 25_000; done += 1000) p.rows('associations', done, 25_000);
    p.end();
    expect(lines).toEqual(['writing…', '  associations: 10000/25000', '  associations: 20000/25000', '  associations: 25000/25000']);
  });
});
