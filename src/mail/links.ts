// The invite email's links: web client choice, the join link and the sign-ed25519 URL.
import type { MailConfig } from '../platform/config.js';

/**
 * The web client to link into: the request's `org.matrix.web_client_location` when it is an https URL
 * without credentials, query or fragment whose host is on the configured allow list; else the configured one.
 */
export function webClientLocation(mail: MailConfig, requested: unknown): string {
  if (typeof requested !== 'string' || requested === '') return mail.webClientUrl;
  let u: URL;
  try {
    u = new URL(requested);
  } catch {
    return mail.webClientUrl;
  }
  if (u.protocol !== 'https:' || u.username || u.password || u.search || u.hash) return mail.webClientUrl;
  if (!mail.webClientAllowedHosts.includes(u.host.toLowerCase())) return mail.webClientUrl;
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

/**
 * The invite email's signurl: this server's sign-ed25519, carrying the token and key in the query string because
 * matrix-js-sdk POSTs only `{mxid}` to it. It points at the v1 endpoint whenever v1 is served, whatever API the
 * invitation came in on: v2 sign-ed25519 requires an identity-server access token, and a web client following the
 * signurl sends none, so a v2 signurl would answer 401 to every client that follows it. Only when v1 is disabled
 * does it point at v2 (the one endpoint left; clients holding an identity-server token can still use it).
 */
export function signUrl(server: { publicBaseUrl: string; v1Enabled: boolean }, token: string, privateKey: string): string {
  const base = `${server.publicBaseUrl}/_matrix/identity/${server.v1Enabled ? 'api/v1' : 'v2'}/sign-ed25519`;
  return `${base}?token=${encodeURIComponent(token)}&private_key=${encodeURIComponent(privateKey)}`;
}

export interface JoinLinkParts {
  webClient: string;
  roomId: string;
  email: string;
  signurl: string;
  roomName: string;
  roomAvatarUrl: string;
  inviterName: string;
  roomType: string;
}

/** `{web_client}/#/room/{room_id}?email=…&signurl=…&room_name=…&room_avatar_url=…&inviter_name=…&room_type=…`, every value URL-encoded. */
export function joinLink(p: JoinLinkParts): string {
  const q = [
    ['email', p.email],
    ['signurl', p.signurl],
    ['room_name', p.roomName],
    ['room_avatar_url', p.roomAvatarUrl],
    ['inviter_name', p.inviterName],
    ['room_type', p.roomType],
  ]
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join('&');
  return `${p.webClient}/#/room/${encodeURIComponent(p.roomId)}?${q}`;
}
