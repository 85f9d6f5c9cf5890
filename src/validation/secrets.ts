// Session ids, validation tokens and constant-time comparison of client-supplied secrets.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RandomBytes } from '../platform/random.js';

/** 24 CSPRNG bytes as base64url: 32 characters of [A-Za-z0-9_-]. */
export function newSecret(random: RandomBytes): string {
  return random(24).toString('base64url');
}

/** Compares in time independent of where the strings differ (and of their lengths, through a digest). */
export function secretsEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}
