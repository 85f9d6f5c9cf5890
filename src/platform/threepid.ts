// Third-party identifiers: address normalisation and the "one plain mailbox" check.

/**
 * Unicode case folding, as Sydent's Python `str.casefold()` does for email addresses. JavaScript has no
 * casefold; upper- then lower-casing applies the full (multi-character) mappings, e.g. ß -> SS -> ss.
 */
export function normaliseAddress(medium: string, address: string): string {
  return medium === 'email' ? address.toUpperCase().toLowerCase() : address;
}

const LOCAL_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uFFFF-]+$/u;
const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9\u0080-\uFFFF-]{1,63}(?<!-)$/u;

/**
 * True when `address` is exactly one plain mailbox `local@domain`: no display-name form, no list,
 * no quoting, comments, IP literals, whitespace, control characters (which could inject headers), or
 * invisible and bidirectional-override characters (which could disguise an address).
 */
export function isPlainMailbox(address: string): boolean {
  // Case folding can lengthen an address (ß -> ss); the stored, folded form must fit too.
  if (
    normaliseAddress('email', address).length > 254 ||
    /[\u0000-\u0020\u007f-\u00a0\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u.test(address)
  )
    return false;
  const at = address.indexOf('@');
  if (at <= 0 || at !== address.lastIndexOf('@')) return false;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (Buffer.byteLength(local) > 64) return false;
  if (!local.split('.').every((atom) => LOCAL_ATOM.test(atom))) return false;
  const labels = domain.split('.');
  if (labels.length < 2) return false;
  return labels.every((label) => DOMAIN_LABEL.test(label)) && !/^[0-9]+$/.test(labels[labels.length - 1]!);
}

/** The server name part of a Matrix ID (`@user:server` -> `server`). */
export function serverNameOf(mxid: string): string {
  return mxid.slice(mxid.indexOf(':') + 1);
}
