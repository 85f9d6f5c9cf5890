// v2 lookup hashing (identity-api.md section 8): sha256 of "<address> <medium> <pepper>", unpadded URL-safe base64.
import { createHash } from 'node:crypto';

export function lookupHash(address: string, medium: string, pepper: string): string {
  return createHash('sha256').update(`${address} ${medium} ${pepper}`, 'utf8').digest('base64url');
}
