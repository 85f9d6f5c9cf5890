// The built-in emails' MIME: a multipart/alternative message, text and HTML, both quoted-printable,
// written as one string. nodemailer's MailComposer would build the same message through a tree of MimeNode
// streams (a stream pipeline per part), a noticeable share of a store-invite's CPU; a message whose shape
// never changes does not need it. RFC 2047 words are still nodemailer's encoder.
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWord, quoteString } from 'nodemailer/lib/mime-funcs';
import { oneLine } from './text.js';

export interface MultipartMessage {
  /** Header value of From, built once by `fromHeader`. */
  from: string;
  /** The one recipient (the outbox row's address). */
  to: string;
  subject: string;
  /** RFC 5322 date. */
  date: string;
  /** With its angle brackets. */
  messageId: string;
  /** [A-Za-z0-9], unique per message. */
  boundary: string;
  text: string;
  html: string;
}

/** RFC 5322 atext plus the space: a display name made only of these needs no quoting. */
const PLAIN_NAME = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$/;
const ASCII = /^[\x20-\x7e]*$/;

/** `Name <address>` for the From header: a non-ASCII name RFC 2047 encoded, an ASCII one quoted when needed. */
export function fromHeader(configured: string): { header: string; address: string } {
  const first = addressparser(configured, { flatten: true })[0];
  if (!first?.address) throw new Error('mail.from has no email address');
  const address = headerAddress(first.address);
  const name = oneLine(first.name ?? '').trim();
  if (!name) return { header: address, address: first.address };
  const shown = PLAIN_NAME.test(name) ? name : ASCII.test(name) ? quoteString(name) : encodeWord(name, 'B', 52);
  return { header: `${shown} <${address}>`, address: first.address };
}

/** An address as a header may carry it: an internationalised domain in its ASCII (punycode) form. */
export function headerAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return oneLine(address);
  const domain = address.slice(at + 1);
  const ascii = ASCII.test(domain) ? domain : domainToASCII(domain) || domain;
  return oneLine(`${address.slice(0, at + 1)}${ascii}`);
}

/** RFC 2047 (base64, UTF-8) like Sydent's `Header(subject, 'utf8').encode()`, folded between encoded words. */
export function encodeSubject(subject: string): string {
  return encodeWord(oneLine(subject), 'B', 60).split(' ').join('\n ');
}

/** Characters quoted-printable must escape: everything but printable ASCII (minus `=`), tab and line breaks. */
const QP_UNSAFE = /[^\t\r\n\x20-\x3c\x3e-\x7e]/gu;
/** Whitespace at the end of a line, which transports may strip: escaped too. */
const QP_TRAILING_SPACE = /[ \t]+$/;

const hexEscape = (c: string) => Buffer.from(c, 'utf8').toString('hex').toUpperCase().replace(/../g, '=$&');
/** ASCII escapes precomputed: HTML is full of `=` (every attribute), which made this the hot spot. */
const ASCII_ESCAPES = Array.from({ length: 128 }, (_, i) => hexEscape(String.fromCharCode(i)));
const qpByte = (c: string) => (c.length === 1 && c.charCodeAt(0) < 128 ? ASCII_ESCAPES[c.charCodeAt(0)]! : hexEscape(c));

/**
 * Quoted-printable (RFC 2045 6.7) with CRLF hard breaks and soft breaks keeping every line within 76
 * characters. The text is mostly ASCII, so escaping by regular expression is far cheaper than the
 * byte-by-byte encoder (HTML escapes `=` in every attribute, so the byte loop would dominate rendering).
 */
export function quotedPrintable(body: string): string {
  const out: string[] = [];
  for (const rawLine of body.split(/\r?\n/)) {
    let line = rawLine.replace(QP_UNSAFE, qpByte);
    const trailing = QP_TRAILING_SPACE.exec(line);
    if (trailing) line = line.slice(0, trailing.index) + trailing[0].replace(/[ \t]/g, (c) => (c === ' ' ? '=20' : '=09'));
    while (line.length > 76) {
      // Cut at 75 (room for the soft break's `=`), never inside an =XX escape.
      let cut = 75;
      if (line[cut - 1] === '=') cut -= 1;
      else if (line[cut - 2] === '=') cut -= 2;
      out.push(`${line.slice(0, cut)}=`);
      line = line.slice(cut);
    }
    out.push(line);
  }
  return out.join('\r\n');
}

/** The whole message, CRLF line endings, ready for SMTP or an .eml file. */
export function buildMultipart(m: MultipartMessage): Buffer {
  const b = `--_tessera-${m.boundary}`;
  const head = [
    `Content-Type: multipart/alternative; boundary="${b}"`,
    `From: ${m.from}`,
    `To: ${headerAddress(m.to)}`,
    `Subject: ${encodeSubject(m.subject).replace(/\n/g, '\r\n')}`,
    `Message-ID: ${m.messageId}`,
    `Date: ${m.date}`,
    'MIME-Version: 1.0',
  ].join('\r\n');
  const part = (type: string, body: string) =>
    `--${b}\r\nContent-Type: ${type}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${quotedPrintable(body)}\r\n`;
  return Buffer.from(`${head}\r\n\r\n${part('text/plain', m.text)}${part('text/html', m.html)}--${b}--\r\n`, 'utf8');
}
