// Mail configuration, retry policy and SMTP error classification.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/platform/config.js';
import { backoffMs } from '../../src/outbox/backoff.js';
import { classifySendError } from '../../src/mail/transport.js';

describe('mail configuration', () => {
  it('defaults to no SMTP (.eml files), Element as web client and a From on the public host', () => {
    const c = loadConfig({ argv: [], env: {} });
    expect(c.mail.smtp.host).toBe('');
    expect(c.mail.smtp.verifyCertificates).toBe(true);
    expect(c.mail.webClientUrl).toBe('https://app.element.io');
    expect(c.mail.from).toBe('Tessera <noreply@127.0.0.1>');
    expect(c.mail.templatesDir).toBe('');
  });

  it('reads the documented environment variables', () => {
    const c = loadConfig({
      argv: [],
      env: {
        TESSERA_SMTP_HOST: 'smtp.example.org',
        TESSERA_SMTP_PORT: '465',
        TESSERA_SMTP_TLS: 'tls',
        TESSERA_SMTP_USER: 'mailer',
        TESSERA_SMTP_PASSWORD: 'secret',
        TESSERA_SMTP_VERIFY_CERTIFICATES: 'false',
        TESSERA_SMTP_MAX_CONNECTIONS: '3',
        TESSERA_MAIL_FROM: 'Example <is@example.org>',
        TESSERA_TEMPLATES_DIR: 'test/fixtures/templates',
        TESSERA_BRAND: 'acme',
        TESSERA_WEB_CLIENT_URL: 'https://chat.example.org/',
        TESSERA_WEB_CLIENT_ALLOWED_HOSTS: 'chat.example.org, Other.Example:8443',
        TESSERA_MAIL_RETENTION_MS: '1000',
        TESSERA_PUBLIC_BASE_URL: 'https://is.example.org',
      },
    });
    expect(c.mail.smtp).toEqual({
      host: 'smtp.example.org',
      port: 465,
      tls: 'tls',
      verifyCertificates: false,
      user: 'mailer',
      password: 'secret',
      maxConnections: 3,
    });
    expect(c.mail.from).toBe('Example <is@example.org>');
    expect(c.mail.templatesDir).toMatch(/\/test\/fixtures\/templates$/);
    expect(c.mail.brand).toBe('acme');
    expect(c.mail.webClientUrl).toBe('https://chat.example.org');
    expect(c.mail.webClientAllowedHosts).toEqual(['chat.example.org', 'other.example:8443']);
    expect(c.mail.keepFinishedMs).toBe(1000);
    expect(c.mail.messageIdDomain).toBe('is.example.org');
  });

  it('requires a From address with SMTP, and refuses bad values', () => {
    expect(() => loadConfig({ argv: [], env: { TESSERA_SMTP_HOST: 'smtp.example.org' } })).toThrow(/From address is required/);
    for (const from of ['nobody', 'a@b@c', 'Name <nobody>', '<a@b.example> trailing']) {
      expect(() => loadConfig({ argv: [], env: { TESSERA_MAIL_FROM: from } }), from).toThrow(/must be an address/);
    }
    expect(loadConfig({ argv: [], env: { TESSERA_MAIL_FROM: 'is@example.org' } }).mail.from).toBe('is@example.org');
    try {
      loadConfig({
        argv: [],
        env: {
          TESSERA_SMTP_TLS: 'ssl',
          TESSERA_WEB_CLIENT_URL: 'javascript:alert(1)',
          TESSERA_BRAND: '../x',
          TESSERA_MAIL_FROM: 'a@b.example\r\nBcc: c@d.example',
        },
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      for (const key of ['mail.smtp.tls', 'mail.webClientUrl', 'mail.brand', 'mail.from']) expect(problems).toContain(key);
    }
  });
});

describe('retry policy', () => {
  /** The jitter source the service builds from 4 random bytes, as if they read `v`. */
  const rnd = (v: number) => () => v / 0x1_0000_0000;

  it('doubles per attempt, stays capped, and jitters within [half, full]', () => {
    expect(backoffMs(1, 1000, 60_000, rnd(0))).toBe(500);
    expect(backoffMs(1, 1000, 60_000, rnd(0xffffffff))).toBe(1000);
    expect(backoffMs(3, 1000, 60_000, rnd(0))).toBe(2000);
    expect(backoffMs(30, 1000, 60_000, rnd(0xffffffff))).toBe(60_000);
    expect(backoffMs(500, 1000, 60_000, rnd(0))).toBe(30_000);
  });

  it('treats 5xx to the envelope or message as permanent and everything else as transient', () => {
    expect(classifySendError({ code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 no such user' })).toEqual({
      permanent: true,
      reason: 'EENVELOPE 550: 550 5.1.1 no such user',
    });
    expect(classifySendError({ code: 'EMESSAGE', responseCode: 554, response: '554 spam' }).permanent).toBe(true);
    expect(classifySendError({ code: 'EENVELOPE', responseCode: 451, response: '451 later' }).permanent).toBe(false);
    expect(classifySendError({ code: 'EAUTH', responseCode: 535, response: '535 bad credentials' }).permanent).toBe(false);
    expect(classifySendError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' }))).toEqual({
      permanent: false,
      reason: 'ESOCKET: connect ECONNREFUSED',
    });
    expect(classifySendError('weird').permanent).toBe(false);
  });
});
