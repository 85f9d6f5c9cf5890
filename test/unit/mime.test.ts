// The built-in emails' MIME writer (in place of nodemailer's MailComposer): what a mail client reads back.
import { describe, expect, it } from 'vitest';
import { simpleParser } from 'mailparser';
import { buildMultipart, fromHeader, headerAddress, quotedPrintable } from '../../src/mail/mime.js';

const message = (over: Partial<Parameters<typeof buildMultipart>[0]> = {}) =>
  buildMultipart({
    from: fromHeader('Example Chat <noreply@is.example>').header,
    to: 'alice@example.org',
    subject: 'You have been invited',
    date: 'Sun, 29 Nov 2026 07:11:38 +0000',
    messageId: '<1764400298000abc@is.example>',
    boundary: 'B0undary',
    text: 'Hello',
    html: '<p>Hello</p>',
    ...over,
  });

describe('buildMultipart', () => {
  it('reads back as multipart/alternative with every header and both bodies intact', async () => {
    const text = `Ωμέγα = 100%\nA line with trailing spaces   \n${'long '.repeat(40)}\n\n.\nend`;
    const html = `<p>${'é'.repeat(120)}</p>\n<a href="https://app.example/#/room/!r:x?email=a%40b&signurl=x">join</a>`;
    const raw = message({ subject: 'Héllo from Ωμέγα, '.repeat(6), text, html });
    const parsed = await simpleParser(raw);
    expect(parsed.from?.value).toEqual([{ name: 'Example Chat', address: 'noreply@is.example' }]);
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value : undefined).toEqual([{ name: '', address: 'alice@example.org' }]);
    expect(parsed.subject).toBe('Héllo from Ωμέγα, '.repeat(6));
    expect(parsed.messageId).toBe('<1764400298000abc@is.example>');
    expect(parsed.date?.toISOString()).toBe('2026-11-29T07:11:38.000Z');
    expect(parsed.headers.get('mime-version')).toBe('1.0');
    expect((parsed.headers.get('content-type') as { value: string }).value).toBe('multipart/alternative');
    // mailparser normalises line breaks to LF; the content itself must survive quoted-printable exactly.
    expect(parsed.text?.replace(/\n$/, '')).toBe(text);
    expect(parsed.html).toBe(html);
  });

  it('writes CRLF only and no line longer than 78 characters', () => {
    const raw = message({ subject: 'x'.repeat(300), text: `${'word '.repeat(100)}\n${'é'.repeat(200)}`, html: 'h'.repeat(500) }).toString(
      'utf8',
    );
    expect(raw).not.toMatch(/[^\r]\n/);
    for (const line of raw.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
  });

  it('cannot be given an extra header or recipient through the subject or the address', async () => {
    const raw = message({ subject: 'hi\r\nBcc: eve@evil.example', to: 'alice@example.org\r\nBcc: eve@evil.example' });
    const parsed = await simpleParser(raw);
    expect(parsed.bcc).toBeUndefined();
    expect(raw.toString('utf8')).not.toMatch(/^Bcc:/m);
  });
});

describe('quotedPrintable', () => {
  it('escapes =, non-ASCII and trailing whitespace, and soft-breaks long lines outside escapes', () => {
    expect(quotedPrintable('a=b')).toBe('a=3Db');
    expect(quotedPrintable('é\t \nx')).toBe('=C3=A9=09=20\r\nx');
    expect(quotedPrintable('a\tb c')).toBe('a\tb c');
    expect(quotedPrintable('😀')).toBe('=F0=9F=98=80');
    const long = quotedPrintable(`${'a'.repeat(74)}é${'b'.repeat(10)}`);
    expect(long.split('\r\n')).toEqual([`${'a'.repeat(74)}=`, `=C3=A9${'b'.repeat(10)}`]);
  });

  it('round-trips random text through a mail parser', async () => {
    const alphabet = ['a', 'Z', ' ', '\t', '=', '.', '\n', '\r\n', 'é', 'Ω', '😀', '<', '>', '&', '-', '_'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let round = 0; round < 40; round++) {
      let text = '';
      const len = next() % 400;
      for (let i = 0; i < len; i++) text += alphabet[next() % alphabet.length];
      const encoded = quotedPrintable(text);
      for (const line of encoded.split('\r\n')) expect(line.length).toBeLessThanOrEqual(76);
      const parsed = await simpleParser(message({ text, html: '<p>x</p>' }));
      // mailparser reads every line break as LF; a message cannot carry a bare CR
      expect(parsed.text?.replace(/\n$/, '')).toBe(text.replace(/\r\n/g, '\n'));
    }
  });
});

describe('fromHeader and headerAddress', () => {
  it('quotes an ASCII name that needs it and encodes a non-ASCII one', async () => {
    expect(fromHeader('Tessera, Inc. <noreply@is.example>')).toEqual({
      header: '"Tessera, Inc." <noreply@is.example>',
      address: 'noreply@is.example',
    });
    expect(fromHeader('noreply@is.example')).toEqual({ header: 'noreply@is.example', address: 'noreply@is.example' });
    const encoded = fromHeader('Équipe Tessera <noreply@is.example>');
    expect(encoded.header).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= <noreply@is\.example>$/);
    const parsed = await simpleParser(message({ from: encoded.header }));
    expect(parsed.from?.value).toEqual([{ name: 'Équipe Tessera', address: 'noreply@is.example' }]);
    expect(() => fromHeader('nobody')).toThrow(/no email address/);
  });

  it('writes an internationalised domain in its ASCII form', () => {
    expect(headerAddress('bob@bücher.example')).toBe('bob@xn--bcher-kva.example');
    expect(headerAddress('bob@example.org')).toBe('bob@example.org');
  });
});
