import { describe, expect, it } from 'vitest';
import { redactEmail } from '../../src/invitations/redact.js';

describe('redactEmail', () => {
  it.each([
    ['alice@example.com', 3, 'ali...@exa...'],
    ['alice@example.com', 1, 'a...@e...'],
    ['al@x.io', 3, 'a...@x.i...'],
    ['a@b.c', 3, '...@b...'],
    ['abc@abcdef.org', 3, 'a...@abc...'],
    ['abcdef@xy.org', 6, 'abc...@xy....'],
    ['bob@ex.io', 3, 'b...@ex....'],
    ['ünïcødé@exämple.org', 3, 'ünï...@exä...'],
    ['😀😀😀😀@x.example', 2, '😀😀...@x....'],
  ])('%s with %i kept -> %s', (address, keep, expected) => {
    expect(redactEmail(address, keep)).toBe(expected);
  });

  it('never returns the address itself', () => {
    for (const a of ['a@b.co', 'abc@def.gh', 'x@y.z']) expect(redactEmail(a, 3)).not.toContain(a);
  });
});
