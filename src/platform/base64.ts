// Unpadded base64 as the Matrix specification uses it (standard and URL-safe alphabets).

/** Unpadded standard base64, the encoding of signatures and long-term keys. */
export function encodeUnpadded(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/** Unpadded URL-safe base64, used for ephemeral keys because they travel inside links. */
export function encodeUrlSafe(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Canonical form for comparing keys that clients may send in either alphabet, padded or not,
 * with a `+` that a query string decoded into a space: URL-safe, unpadded.
 */
export function canonicalKeyString(input: string): string {
  return input.replace(/ /g, '+').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes either alphabet, padded or not; undefined when the input is not base64 at all. */
export function decodeAny(input: string): Buffer | undefined {
  const s = canonicalKeyString(input);
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  return Buffer.from(s, 'base64url');
}
