// Rendering: Sydent-layout templates byte for byte, the built-in message, escaping, brands, pages.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { simpleParser } from 'mailparser';
import { loadConfig, type ConfigInput } from '../../src/platform/config.js';
import { MailRenderer, PermanentMailError } from '../../src/mail/render.js';
import { encodeSubject } from '../../src/mail/mime.js';
import { renderVerifyResponsePage } from '../../src/validation/pages.js';
import { resolveBrand } from '../../src/mail/brand.js';
import { signUrl, webClientLocation } from '../../src/mail/links.js';
import { truncate, oneLine } from '../../src/mail/text.js';
import type { Deps } from '../../src/deps.js';
import type { MailJob } from '../../src/mail/MailOutboxStore.js';
import { createLogger } from '../../src/platform/logger.js';

const TEMPLATES = new URL('../fixtures/templates', import.meta.url).pathname;
const EXPECTED = (name: string) => readFileSync(new URL(`../fixtures/mail/${name}`, import.meta.url));
const NOW = Date.UTC(2026, 10, 29, 7, 30, 0);

/** Deterministic "randomness": every call returns the next bytes of a fixed sequence. */
function fixedRandom() {
  let next = 0;
  return (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (next++ * 37 + 11) & 0xff;
    return b;
  };
}

function config(mail: ConfigInput['mail'] = {}) {
  return loadConfig({
    argv: [],
    env: {},
    overrides: {
      dataDir: '/tmp/tessera-unused',
      server: { publicBaseUrl: 'https://is.example', name: 'is.example' },
      mail: { from: 'Example Chat <noreply@is.example>', webClientAllowedHosts: ['chat.example.org'], ...mail },
    },
  });
}

function renderer(mail: ConfigInput['mail'] = {}) {
  return new MailRenderer({ config: config(mail), clock: () => NOW, random: fixedRandom() });
}

const invite = (fields: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): MailJob => ({
  id: 7,
  kind: 'invite',
  recipient: 'alice@example.org',
  attempts: 1,
  createdAt: NOW,
  payload: {
    fields: {
      medium: 'email',
      address: 'alice@example.org',
      room_id: '!tea:hs.example',
      sender: '@bob:hs.example',
      room_name: 'Tea party',
      room_alias: '#tea:hs.example',
      sender_display_name: 'Bob',
      ...fields,
    },
    token: 'TOKENtokenTOKENtokenTOKENtoken12',
    ephemeralPrivateKey: 'cHJpdmF0ZS1rZXktc2VlZC1mb3ItdGVzdHMtb25seS0',
    version: 'v1',
    verifiedSender: null,
    brand: null,
    ...extra,
  },
});

const verification = (extra: Record<string, unknown> = {}): MailJob => ({
  id: 8,
  kind: 'verification',
  recipient: 'carol@example.org',
  attempts: 1,
  createdAt: NOW,
  payload: {
    token: '123456',
    link: 'https://is.example/_matrix/identity/v2/validate/email/submitToken?token=123456&client_secret=cs&sid=9',
    ipaddress: '192.0.2.7',
    brand: null,
    ...extra,
  },
});

describe('Sydent-layout templates', () => {
  it('render the invite as a raw message, byte for byte', async () => {
    const r = renderer({ templatesDir: TEMPLATES });
    const out = await r.render(
      invite({ room_name: 'Thé à la crème', com_example_note: 'kept' }, { verifiedSender: '@bob:hs.example', version: 'v2' }),
    );
    expect(out.template).toBe('matrix-org/invite_template.eml.j2');
    expect(out.to).toBe('alice@example.org');
    expect(out.envelopeFrom).toBe('noreply@is.example');
    expect(out.raw.toString('utf8')).toBe(EXPECTED('sydent-invite.eml').toString('utf8'));
    expect(out.raw.equals(EXPECTED('sydent-invite.eml'))).toBe(true);
  });

  it('render the verification email byte for byte', async () => {
    const out = await renderer({ templatesDir: TEMPLATES }).render(verification());
    expect(out.template).toBe('matrix-org/verification_template.eml.j2');
    expect(out.raw.equals(EXPECTED('sydent-verification.eml'))).toBe(true);
  });

  it('parse as a multipart message with the encoded subject and the values in both parts', async () => {
    const out = await renderer({ templatesDir: TEMPLATES }).render(
      invite({ sender_display_name: 'Zoë <b>', room_name: '<script>x</script>' }),
    );
    const parsed = await simpleParser(out.raw);
    expect(parsed.subject).toBe('Zoë <b> has invited you to chat');
    expect(parsed.text).toContain('Zoë <b> invited you to a room\n(<script>x</script>) on Example Chat');
    expect(parsed.html).toContain('Zoë &lt;b&gt;');
    expect(parsed.html).toContain('(&lt;script&gt;x&lt;/script&gt;)');
    expect(parsed.html).not.toContain('<script>');
    expect(parsed.text).toContain('room_name=%3Cscript%3Ex%3C%2Fscript%3E');
  });

  it('never let a value add a header, whatever the template does with it', async () => {
    const hostile = 'Eve\r\nBcc: victim@example.net\r\nX-Evil: 1\n\n<b>body</b>';
    const out = await renderer({ templatesDir: TEMPLATES }).render(
      invite({ sender_display_name: hostile, room_name: hostile, com_example_note: hostile }),
    );
    const parsed = await simpleParser(out.raw);
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.headers.has('x-evil')).toBe(false);
    expect([...parsed.headers.keys()].sort()).toEqual(['content-type', 'date', 'from', 'message-id', 'mime-version', 'subject', 'to']);
    expect(out.raw.toString()).not.toMatch(/\r\n(Bcc|X-Evil):/i);
    expect(parsed.text).toContain('Extra: Eve  Bcc: victim@example.net  X-Evil: 1  <b>body</b>');
  });

  it('use the requested brand when its folder exists, else the default brand', async () => {
    const r = renderer({ templatesDir: TEMPLATES });
    const acme = await r.render(invite({}, { brand: 'acme' }));
    expect(acme.template).toBe('acme/invite_template.eml.j2');
    expect(acme.raw.toString()).toContain('ACME invitation from Bob to Tea party.\r\nToken: TOKENtoken');
    // acme has no verification template: the default brand's is used
    expect((await r.render(verification({ brand: 'acme' }))).template).toBe('matrix-org/verification_template.eml.j2');
    const cfg = config({ templatesDir: TEMPLATES });
    expect(resolveBrand(cfg.mail, 'acme')).toBe('acme');
    for (const bad of ['nope', '../matrix-org', '..', '.', '', 'a/b', 42, null]) expect(resolveBrand(cfg.mail, bad)).toBeNull();
    expect(resolveBrand(config().mail, 'acme')).toBeNull(); // no templates configured
  });

  it('fall back to the built-in message when the brand folder lacks the template', async () => {
    const out = await renderer({ templatesDir: TEMPLATES, brand: 'acme' }).render(verification());
    // acme lacks it, the default brand is acme: neither has it, so matrix-org is not consulted
    expect(out.template).toBe('builtin');
  });
});

describe('the built-in invite email', () => {
  it('is multipart with the inviter, room, alias, avatar, space wording and the join link', async () => {
    const out = await renderer().render(invite({ room_type: 'm.space', room_avatar_url: 'mxc://hs.example/abc' }, { version: 'v2' }));
    expect(out.template).toBe('builtin');
    const parsed = await simpleParser(out.raw);
    expect(parsed.subject).toBe('Bob has invited you to a space');
    expect(parsed.messageId).toBe(out.messageId);
    expect(parsed.date?.getTime()).toBe(NOW);
    expect(parsed.text).toContain('Bob (@bob:hs.example) has invited you to join the space "Tea party" (#tea:hs.example) on Matrix.');
    expect(parsed.text).toContain('Space avatar: mxc://hs.example/abc');
    const link = parsed.text!.split('\n').find((l) => l.startsWith('https://'))!;
    // a v2 invitation still gets the v1 signurl: v1 is served, and v2 sign-ed25519 needs a token web clients lack
    const signurl =
      'https://is.example/_matrix/identity/api/v1/sign-ed25519?token=TOKENtokenTOKENtokenTOKENtoken12&private_key=cHJpdmF0ZS1rZXktc2VlZC1mb3ItdGVzdHMtb25seS0';
    expect(link).toBe(
      `https://app.element.io/#/room/!tea%3Ahs.example?email=alice%40example.org&signurl=${encodeURIComponent(signurl)}` +
        '&room_name=Tea%20party&room_avatar_url=mxc%3A%2F%2Fhs.example%2Fabc&inviter_name=Bob&room_type=m.space',
    );
    expect(parsed.html).toContain(`href="${link.replace(/&/g, '&amp;')}"`);
    expect(parsed.html).toContain('Join the space');
  });

  it('points the signurl at v1 whenever v1 is served, and at v2 only when v1 is disabled', async () => {
    const key = 'cHJpdmF0ZS1rZXktc2VlZC1mb3ItdGVzdHMtb25seS0';
    const signurlOf = async (r: MailRenderer, version: 'v1' | 'v2') => {
      const text = (await simpleParser((await r.render(invite({}, { version }))).raw)).text!;
      const link = new URL(text.split('\n').find((l) => l.startsWith('https://app.element.io/'))!);
      return new URLSearchParams(link.hash.slice(link.hash.indexOf('?') + 1)).get('signurl');
    };
    const v1 = 'https://is.example/_matrix/identity/api/v1/sign-ed25519?token=TOKENtokenTOKENtokenTOKENtoken12&private_key=' + key;
    expect(await signurlOf(renderer(), 'v1')).toBe(v1);
    expect(await signurlOf(renderer(), 'v2')).toBe(v1);
    const noV1 = config();
    noV1.server.v1Enabled = false;
    const r = new MailRenderer({ config: noV1, clock: () => NOW, random: fixedRandom() });
    const v2 = 'https://is.example/_matrix/identity/v2/sign-ed25519?token=TOKENtokenTOKENtokenTOKENtoken12&private_key=' + key;
    expect(await signurlOf(r, 'v1')).toBe(v2);
    expect(await signurlOf(r, 'v2')).toBe(v2);
    expect(signUrl({ publicBaseUrl: 'https://is.example', v1Enabled: true }, 'a+b&c', 'k/=')).toBe(
      'https://is.example/_matrix/identity/api/v1/sign-ed25519?token=a%2Bb%26c&private_key=k%2F%3D',
    );
  });

  it('honours org.matrix.web_client_location only for allow-listed https hosts', async () => {
    const mail = config().mail;
    expect(webClientLocation(mail, 'https://chat.example.org/app/')).toBe('https://chat.example.org/app');
    expect(webClientLocation(mail, 'https://CHAT.example.org')).toBe('https://chat.example.org');
    for (const bad of [
      'http://chat.example.org',
      'https://evil.example',
      'https://chat.example.org.evil.example',
      'https://u:p@chat.example.org',
      'https://chat.example.org/?x=1',
      'https://chat.example.org/#x',
      'javascript:alert(1)',
      'not a url',
      42,
      undefined,
    ]) {
      expect(webClientLocation(mail, bad), String(bad)).toBe('https://app.element.io');
    }
    const out = await renderer().render(invite({ 'org.matrix.web_client_location': 'https://chat.example.org' }));
    expect((await simpleParser(out.raw)).text).toContain('https://chat.example.org/#/room/');
  });

  it('truncates long names and escapes everything user-controlled', async () => {
    const name = 'Ωμέγα'.repeat(10) + '<img src=x onerror=alert(1)>';
    const room = '"><script>alert(1)</script>' + 'x'.repeat(100);
    const out = await renderer().render(invite({ sender_display_name: name, room_name: room, room_alias: '#a"b:hs' }));
    const parsed = await simpleParser(out.raw);
    expect(parsed.subject).toBe(`${'Ωμέγα'.repeat(4)}... has invited you to chat`);
    expect(parsed.text).toContain(`${'Ωμέγα'.repeat(4)}... (@bob:hs.example)`);
    expect(parsed.text).toContain(`"${truncate(room, 30)}"`);
    expect(parsed.html).not.toMatch(/<script|<img/);
    expect(parsed.html).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(parsed.html).toContain('#a&quot;b:hs');
  });

  it('refuses payloads that can never become a message', async () => {
    const r = renderer();
    await expect(r.render({ ...invite(), payload: { token: 't' } })).rejects.toBeInstanceOf(PermanentMailError);
    await expect(r.render({ ...verification(), payload: {} })).rejects.toBeInstanceOf(PermanentMailError);
    await expect(r.render({ ...invite(), kind: 'other' as never })).rejects.toBeInstanceOf(PermanentMailError);
  });
});

describe('the built-in verification email', () => {
  it('carries the link and the code in both parts', async () => {
    const out = await renderer().render(verification({ ipaddress: '192.0.2.7\r\nX-Evil: 1' }));
    const parsed = await simpleParser(out.raw);
    expect(parsed.subject).toBe('Confirm your email address for Matrix');
    expect(parsed.headers.has('x-evil')).toBe(false);
    expect(parsed.text).toContain(verification().payload.link as string);
    expect(parsed.text).toContain('the code is 123456');
    expect(parsed.html).toContain(`href="${(verification().payload.link as string).replace(/&/g, '&amp;')}"`);
  });
});

describe('helpers', () => {
  it('encode subjects as RFC 2047 words folded onto continuation lines', () => {
    expect(encodeSubject('Hi')).toBe('=?UTF-8?B?SGk=?=');
    const long = encodeSubject('Ωμέγα '.repeat(20));
    expect(long.split('\n').length).toBeGreaterThan(1);
    expect(
      long
        .split('\n')
        .slice(1)
        .every((l) => l.startsWith(' =?UTF-8?B?')),
    ).toBe(true);
    expect(encodeSubject('a\r\nBcc: x')).not.toMatch(/[\r\n]Bcc/);
  });

  it('clean values to one line and cut on code points', () => {
    expect(oneLine('a\r\nb\u2028c\u0000d')).toBe('a  b c d');
    expect(truncate('😀'.repeat(25), 20)).toBe(`${'😀'.repeat(20)}...`);
    expect(truncate('short', 20)).toBe('short');
  });
});

describe('the verify response page', () => {
  const deps = (mail: ConfigInput['mail'] = {}) => ({ config: config(mail), log: createLogger('silent') }) as unknown as Deps;

  it('renders the brand template with the message escaped', () => {
    const page = renderVerifyResponsePage(deps({ templatesDir: TEMPLATES }), { message: 'Done <b>& dusted</b>' });
    expect(page).toContain('<div class="message">Done &lt;b&gt;&amp; dusted&lt;/b&gt;</div>');
    expect(renderVerifyResponsePage(deps({ templatesDir: TEMPLATES }), { brand: 'acme', message: 'ok' })).toContain(
      '<h1>ACME</h1><p>ok</p>',
    );
    expect(renderVerifyResponsePage(deps({ templatesDir: TEMPLATES }), { brand: 'missing', message: 'ok' })).toContain('Example Chat');
  });

  it('falls back to a small built-in page', () => {
    const page = renderVerifyResponsePage(deps(), { message: '<script>alert(1)</script>' });
    expect(page).toContain('<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>');
    expect(page).not.toContain('<script>');
  });
});

describe('hostile input in fields that are not truncated', () => {
  // CR/LF at the start of values, in fields that are not cut to 20/30 characters, and in an extra key.
  const hostile = {
    sender_display_name: '\r\nBcc: evil@example.net',
    room_type: '\r\nX-Injected: yes',
    sender: '@x:hs.example\r\nCc: evil@example.net',
    com_example_note: '\r\n\r\n--boundary\r\nX-Injected: yes',
  };
  for (const [path, mail] of [
    ['built-in', {}],
    ['Sydent template', { templatesDir: TEMPLATES }],
  ] as const) {
    it(`adds no header and no recipient (${path})`, async () => {
      const out = await renderer(mail).render(invite(hostile));
      expect(out.to).toBe('alice@example.org');
      const parsed = await simpleParser(out.raw);
      for (const h of ['bcc', 'cc', 'x-injected']) expect(parsed.headers.has(h), h).toBe(false);
      expect((parsed.to as { value: unknown[] }).value).toHaveLength(1);
      // every header line of the raw message is a header we expect, and none carries the payload
      const head = out.raw.toString('utf8').split('\r\n\r\n')[0]!;
      expect(head).not.toMatch(/^(bcc|cc|x-injected):/im);
    });
  }
});
