// Form-encoded bodies on the legacy v1 routes: the form's strings become the JSON types the schema wants, or stay
// as they came for the validator to refuse.
import { describe, expect, it } from 'vitest';
import { fromForm } from '../../src/platform/http/api.js';

describe('fromForm', () => {
  it('turns listed integer fields into numbers only when they are whole decimal numbers', () => {
    const types = { send_attempt: 'integer' } as const;
    expect(fromForm({ send_attempt: '1', email: 'a@b.example' }, types)).toEqual({ send_attempt: 1, email: 'a@b.example' });
    expect(fromForm({ send_attempt: '-12' }, types)).toEqual({ send_attempt: -12 });
    for (const s of ['abc', '1.5', '', ' 1', '1e3', '0x10']) expect(fromForm({ send_attempt: s }, types), s).toEqual({ send_attempt: s });
  });

  it('turns listed number fields into finite numbers, and booleans from true or false only', () => {
    const types = { n: 'number', b: 'boolean' } as const;
    expect(fromForm({ n: '1.5', b: 'true' }, types)).toEqual({ n: 1.5, b: true });
    expect(fromForm({ n: '-2', b: 'false' }, types)).toEqual({ n: -2, b: false });
    for (const s of ['', ' ', 'Infinity', 'NaN', 'x']) expect(fromForm({ n: s }, types).n, s).toBe(s);
    for (const s of ['TRUE', '1', 'yes', '']) expect(fromForm({ b: s }, types).b, s).toBe(s);
  });

  it('leaves repeated keys (arrays), nested values, unlisted and absent fields as they are', () => {
    const types = { send_attempt: 'integer' } as const;
    expect(fromForm({ send_attempt: ['1', '2'] }, types)).toEqual({ send_attempt: ['1', '2'] });
    expect(fromForm({ send_attempt: { a: '1' } }, types)).toEqual({ send_attempt: { a: '1' } });
    expect(fromForm({ other: '7' }, types)).toEqual({ other: '7' });
  });
});
