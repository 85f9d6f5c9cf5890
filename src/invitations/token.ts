// Invitation tokens: 32 characters of [A-Za-z0-9_-] from the CSPRNG (192 bits).
import type { RandomBytes } from '../platform/random.js';
import { randomBytes } from 'node:crypto';

export function newInviteToken(random: RandomBytes = randomBytes): string {
  return random(24).toString('base64url');
}
