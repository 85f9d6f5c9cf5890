import { describe, expect, it } from 'vitest';
import { newInviteToken } from '../../src/invitations/token.js';

describe('invite tokens', () => {
  it('are at least 32 characters of the allowed alphabet', () => {
    for (let i = 0; i < 500; i++) expect(newInviteToken()).toMatch(/^[0-9a-zA-Z.=_-]{32,255}$/);
  });

  it('are unique across many draws', () => {
    const seen = new Set(Array.from({ length: 5000 }, () => newInviteToken()));
    expect(seen.size).toBe(5000);
  });

  it('come from the injected random source, all of its 24 bytes', () => {
    const fixed = (n: number) => Buffer.alloc(n, 0xfb);
    expect(newInviteToken(fixed)).toBe(Buffer.alloc(24, 0xfb).toString('base64url'));
  });
});
