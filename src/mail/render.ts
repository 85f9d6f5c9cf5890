// Turns a mail-outbox row into the raw message to send: Sydent-layout templates through nunjucks
// (the template writes the whole message, headers included) or the built-in English multipart message.
import nunjucks from 'nunjucks';
import type { Config } from '../platform/config.js';
import type { RandomBytes } from '../platform/random.js';
import type { MailJob } from './MailOutboxStore.js';
import { templatePath } from './brand.js';
import { inviteParts, verificationParts, type Parts } from './defaultTemplates.js';
import { joinLink, signUrl, webClientLocation } from './links.js';
import { buildMultipart, encodeSubject, fromHeader } from './mime.js';
import { oneLine, pythonFormat, randomAlnum, rfc5322Date, truncate } from './text.js';

/** Sydent's limits: longer names are cut so that a hostile name cannot take over the message. */
export const MAX_DISPLAY_NAME = 20;
export const MAX_ROOM_NAME = 30;

export const INVITE_TEMPLATE = 'invite_template.eml.j2';
export const VERIFICATION_TEMPLATE = 'verification_template.eml.j2';

/** A row that can never become a message (malformed payload): retrying cannot help. */
export class PermanentMailError extends Error {
  override name = 'PermanentMailError';
}

export interface RenderedMail {
  raw: Buffer;
  /** Envelope: the bare From address, and the one recipient (the row's, never the template's). */
  envelopeFrom: string;
  to: string;
  messageId: string;
  /** `builtin` or the Sydent template used (`brand/file`). */
  template: string;
}

export interface RenderDeps {
  config: Config;
  clock: () => number;
  random: RandomBytes;
}

interface Built {
  /** Sydent variables (all strings, all one line). */
  vars: Record<string, string>;
  subject: string;
  parts: () => Parts;
  file: string;
  brand: string | null;
}

const str = (v: unknown): string => (typeof v === 'string' ? oneLine(v) : '');

/** The optional request fields Sydent fills with empty strings when absent. */
const OPTIONAL_INVITE_FIELDS = [
  'room_alias',
  'room_avatar_url',
  'room_join_rules',
  'room_name',
  'room_type',
  'sender_display_name',
  'sender_avatar_url',
  'guest_user_id',
  'guest_access_token',
];

export class MailRenderer {
  private readonly env?: nunjucks.Environment;
  readonly envelopeFrom: string;
  private readonly fromHeader: string;

  constructor(private readonly deps: RenderDeps) {
    const { mail } = deps.config;
    if (mail.templatesDir) {
      this.env = new nunjucks.Environment(new nunjucks.FileSystemLoader(mail.templatesDir), { autoescape: true });
    }
    const from = fromHeader(mail.from);
    this.envelopeFrom = from.address;
    this.fromHeader = from.header;
  }

  async render(job: MailJob): Promise<RenderedMail> {
    const built = job.kind === 'invite' ? this.invite(job) : job.kind === 'verification' ? this.verification(job) : undefined;
    if (!built) throw new PermanentMailError(`unknown mail kind ${JSON.stringify(job.kind)}`);
    const { config, clock, random } = this.deps;
    const now = clock();
    const messageId = `<${now}${randomAlnum(random, 16)}@${config.mail.messageIdDomain}>`;
    const date = rfc5322Date(now);
    const to = job.recipient;
    const template = templatePath(config.mail, built.brand, built.file);
    if (template && this.env) {
      const vars: Record<string, string> = {
        ...built.vars,
        to: oneLine(to),
        from: oneLine(config.mail.from),
        date,
        messageid: messageId,
        multipart_boundary: randomAlnum(random, 32),
        subject_header_value: encodeSubject(built.subject),
      };
      const text = this.env.render(template, vars);
      return { raw: Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8'), envelopeFrom: this.envelopeFrom, to, messageId, template };
    }
    const { text, html } = built.parts();
    const raw = buildMultipart({
      from: this.fromHeader,
      to,
      subject: built.subject,
      date,
      messageId,
      boundary: randomAlnum(random, 24),
      text,
      html,
    });
    return { raw, envelopeFrom: this.envelopeFrom, to, messageId, template: 'builtin' };
  }

  private invite(job: MailJob): Built {
    const p = job.payload;
    const fields = p.fields;
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields))
      throw new PermanentMailError('invite payload without fields');
    if (typeof p.token !== 'string' || typeof p.ephemeralPrivateKey !== 'string')
      throw new PermanentMailError('invite payload without token or key');
    const f = fields as Record<string, unknown>;
    const { config } = this.deps;
    const vars: Record<string, string> = {};
    for (const k of OPTIONAL_INVITE_FIELDS) vars[k] = '';
    // Every string field of the request, as Sydent passes them (extra keys included), cleaned to one line.
    for (const [k, v] of Object.entries(f)) if (typeof v === 'string') vars[k] = oneLine(v);
    vars.sender_display_name = truncate(vars.sender_display_name!, MAX_DISPLAY_NAME);
    vars.room_name = truncate(vars.room_name!, MAX_ROOM_NAME);
    const sender = vars.sender ?? '';
    const verifiedSender = typeof p.verifiedSender === 'string' ? oneLine(p.verifiedSender) : '';
    const webClient = webClientLocation(config.mail, f['org.matrix.web_client_location']);
    // v1 whenever v1 is served, even for a v2 invitation: see signUrl.
    const signurl = signUrl(config.server, p.token, p.ephemeralPrivateKey);
    const link = joinLink({
      webClient,
      roomId: vars.room_id ?? '',
      email: job.recipient,
      signurl,
      roomName: vars.room_name,
      roomAvatarUrl: vars.room_avatar_url!,
      inviterName: vars.sender_display_name,
      roomType: vars.room_type!,
    });
    Object.assign(vars, {
      token: p.token,
      ephemeral_private_key: p.ephemeralPrivateKey,
      web_client_location: webClient,
      bracketed_room_name: vars.room_name ? `(${vars.room_name}) ` : '',
      bracketed_verified_sender: verifiedSender ? `(${verifiedSender}) ` : '',
      signurl,
      link,
    });
    const isSpace = vars.room_type === 'm.space';
    const subject = pythonFormat(isSpace ? config.mail.inviteSubjectSpace : config.mail.inviteSubject, {
      ...vars,
      sender_display_name: vars.sender_display_name || sender,
    });
    return {
      vars,
      subject,
      file: INVITE_TEMPLATE,
      brand: typeof p.brand === 'string' ? p.brand : null,
      parts: () =>
        inviteParts({
          inviterName: vars.sender_display_name!,
          inviterMxid: verifiedSender || sender,
          roomName: vars.room_name!,
          roomAlias: vars.room_alias!,
          roomAvatarUrl: vars.room_avatar_url!,
          roomId: vars.room_id ?? '',
          isSpace,
          link,
          token: p.token as string,
          serverName: config.server.name,
        }),
    };
  }

  private verification(job: MailJob): Built {
    const p = job.payload;
    if (typeof p.token !== 'string' || typeof p.link !== 'string')
      throw new PermanentMailError('verification payload without token or link');
    const vars = { token: oneLine(p.token), link: oneLine(p.link), ipaddress: str(p.ipaddress) };
    const subject = pythonFormat(this.deps.config.mail.verificationSubject, vars);
    return {
      vars,
      subject,
      file: VERIFICATION_TEMPLATE,
      brand: typeof p.brand === 'string' ? p.brand : null,
      parts: () => verificationParts({ ...vars, serverName: this.deps.config.server.name }),
    };
  }
}
