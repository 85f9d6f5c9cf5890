// Independent checks of Matrix signatures for tests: tweetnacl plus a canonical JSON written separately from src/.
import nacl from 'tweetnacl';

export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** True when `signed.signatures[server][keyId]` verifies with `publicKey` (base64, either alphabet) under tweetnacl. */
export function verifyMatrixSignature(signed: any, server: string, keyId: string, publicKey: string): boolean {
  const { signatures, unsigned: _unsigned, ...rest } = signed;
  const sig = signatures?.[server]?.[keyId];
  if (typeof sig !== 'string') return false;
  return nacl.sign.detached.verify(
    Buffer.from(canonical(rest), 'utf8'),
    Buffer.from(sig, 'base64'),
    Buffer.from(publicKey.replace(/-/g, '+').replace(/_/g, '/'), 'base64'),
  );
}
