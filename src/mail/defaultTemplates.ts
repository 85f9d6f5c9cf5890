// The built-in English emails, used when no Sydent template applies: text and HTML parts.
// Every value arrives already cleaned to one line; HTML escaping happens here, URL encoding in links.ts.
import { escapeHtml as h } from './text.js';

export interface InviteContent {
  /** Display name (truncated), or empty. */
  inviterName: string;
  inviterMxid: string;
  /** Room name (truncated), or empty. */
  roomName: string;
  roomAlias: string;
  roomAvatarUrl: string;
  roomId: string;
  isSpace: boolean;
  link: string;
  token: string;
  serverName: string;
}

export interface Parts {
  text: string;
  html: string;
}

function page(title: string, body: string): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
    `<title>${h(title)}</title></head>`,
    '<body style="font-family: Helvetica, Arial, sans-serif; font-size: 15px; color: #222; max-width: 640px; margin: 0 auto; padding: 16px;">',
    body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export function inviteParts(c: InviteContent): Parts {
  const kind = c.isSpace ? 'space' : 'room';
  const who = c.inviterName ? `${c.inviterName} (${c.inviterMxid})` : c.inviterMxid;
  const where = c.roomName ? `the ${kind} "${c.roomName}"` : `a ${kind}`;
  const alias = c.roomAlias ? ` (${c.roomAlias})` : '';
  const text = [
    'Hi,',
    '',
    `${who} has invited you to join ${where}${alias} on Matrix.`,
    '',
    `To accept, open this link and sign in or create an account; it joins you to the ${kind}:`,
    '',
    c.link,
    '',
    'The link carries your personal invitation: please do not forward it.',
    '',
    `Using another Matrix client? Accept the invitation to ${c.roomId} from there.`,
    `Invitation token: ${c.token}`,
    ...(c.roomAvatarUrl ? [`${c.isSpace ? 'Space' : 'Room'} avatar: ${c.roomAvatarUrl}`] : []),
    '',
    `Sent by the identity server ${c.serverName} on behalf of ${c.inviterMxid}.`,
    'If you were not expecting this invitation, you can ignore this email.',
    '',
  ].join('\n');
  const whoHtml = c.inviterName ? `<strong>${h(c.inviterName)}</strong> (${h(c.inviterMxid)})` : `<strong>${h(c.inviterMxid)}</strong>`;
  const whereHtml = c.roomName ? `the ${kind} <strong>${h(c.roomName)}</strong>` : `a ${kind}`;
  const html = page(
    `Invitation to a Matrix ${kind}`,
    [
      '<p>Hi,</p>',
      `<p>${whoHtml} has invited you to join ${whereHtml}${c.roomAlias ? ` (${h(c.roomAlias)})` : ''} on Matrix.</p>`,
      `<p><a href="${h(c.link)}" style="display: inline-block; padding: 10px 18px; background: #0dbd8b; color: #fff; text-decoration: none; border-radius: 6px;">Join the ${kind}</a></p>`,
      `<p>Or copy this link into your browser:<br><span style="word-break: break-all; font-size: 12px;">${h(c.link)}</span></p>`,
      '<p>The link carries your personal invitation: please do not forward it.</p>',
      `<p style="color: #666; font-size: 13px;">Using another Matrix client? Accept the invitation to <code>${h(c.roomId)}</code> from there.<br>`,
      `Invitation token: <code>${h(c.token)}</code>${c.roomAvatarUrl ? `<br>${c.isSpace ? 'Space' : 'Room'} avatar: <code>${h(c.roomAvatarUrl)}</code>` : ''}</p>`,
      `<p style="color: #666; font-size: 13px;">Sent by the identity server ${h(c.serverName)} on behalf of ${h(c.inviterMxid)}. If you were not expecting this invitation, you can ignore this email.</p>`,
    ].join('\n'),
  );
  return { text, html };
}

export interface VerificationContent {
  link: string;
  token: string;
  ipaddress: string;
  serverName: string;
}

export function verificationParts(c: VerificationContent): Parts {
  const from = c.ipaddress ? ` from the IP address ${c.ipaddress}` : '';
  const text = [
    'Hello,',
    '',
    `We have received a request${from} to use this email address with the Matrix identity server ${c.serverName}.`,
    'If it was you, complete the verification of your email address with this link:',
    '',
    c.link,
    '',
    `If your client asks for a code, the code is ${c.token}`,
    '',
    'If you did not make this request, please ignore this email.',
    '',
  ].join('\n');
  const html = page(
    'Confirm your email address',
    [
      '<p>Hello,</p>',
      `<p>We have received a request${h(from)} to use this email address with the Matrix identity server ${h(c.serverName)}. If it was you, complete the verification of your email address:</p>`,
      `<p><a href="${h(c.link)}">Complete email verification</a></p>`,
      `<p>Or copy this link into your browser:<br><span style="word-break: break-all; font-size: 12px;">${h(c.link)}</span></p>`,
      `<p>If your client asks for a code, the code is <code>${h(c.token)}</code></p>`,
      '<p>If you did not make this request, please ignore this email.</p>',
    ].join('\n'),
  );
  return { text, html };
}
