// display_name redaction for store-invite (identity-api.md section 6; Sydent's algorithm, characters configurable).

function redactPart(part: string, keep: number): string {
  const chars = Array.from(part); // code points, so non-Latin names are never cut inside a character
  if (chars.length <= keep) {
    if (chars.length > 5) return `${chars.slice(0, 3).join('')}...`;
    if (chars.length > 1) return `${chars[0]}...`;
    return '...';
  }
  return `${chars.slice(0, keep).join('')}...`;
}

/** `alice@example.com` with keep=3 gives `ali...@exa...`; each side is redacted on its own. */
export function redactEmail(address: string, keep: number): string {
  const at = address.indexOf('@');
  if (at < 0) return redactPart(address, keep);
  return `${redactPart(address.slice(0, at), keep)}@${redactPart(address.slice(at + 1), keep)}`;
}
