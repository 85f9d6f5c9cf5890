// The door's checks (src/platform/http/inputCheck.ts) and the size keyword the generator compiles into the
// validators (x-tessera-max-json-bytes), held to JSON.stringify on the values where counting could go wrong.
import { describe, expect, it } from 'vitest';
import { operations } from '../../generated/identity.validators.js';
import { MAX_BODY_DEPTH, checkBody, checkParameters, checkRawQuery, textProblem } from '../../src/platform/http/inputCheck.js';

/** `depth` levels of nesting, built without recursion: the body itself is level 1. */
function nested(depth: number): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  let cur = body;
  for (let level = 2; level <= depth; level++) {
    const next: Record<string, unknown> = {};
    cur.a = next;
    cur = next;
  }
  return body;
}

describe('checkBody', () => {
  it('accepts 32 levels and refuses 33, naming the top-level field, at any depth without recursing', () => {
    expect(MAX_BODY_DEPTH).toBe(32);
    expect(checkBody(nested(32))).toBeUndefined();
    expect(checkBody(nested(33))?.message).toBe("Invalid parameter 'a': nests deeper than 32 levels");
    expect(checkBody(nested(200_000))?.errcode).toBe('M_INVALID_PARAM');
    expect(checkBody({ threepids: [['email', 'a@example.org']] })).toBeUndefined();
  });

  it('refuses lone surrogates and U+0000 in strings and keys at any depth; pairs are text', () => {
    expect(checkBody({ a: '😀', b: ['𝔅', { c: 'é' }] })).toBeUndefined();
    expect(checkBody({ a: '\ud83d' })?.message).toBe("Invalid parameter 'a': is not well-formed Unicode (a lone surrogate)");
    expect(checkBody({ a: '\ude00x' })?.message).toContain("'a'");
    expect(checkBody({ a: [{ b: 'x\u0000' }] })?.message).toBe("Invalid parameter 'a': contains U+0000");
    expect(checkBody({ a: { ['k\ud800']: 1 } })?.message).toContain("'a': a field name in it is not well-formed");
    expect(checkBody({ ['k\ud800\u0000']: 1 })?.message).toContain("'k\\ud800\\u0000'");
    expect(textProblem('\ud83d\ude00')).toBeUndefined();
  });
});

describe('parameters', () => {
  it('checks parsed values and names, repeated ones included', () => {
    expect(checkParameters({ a: 'x', b: ['y', 'z'], c: undefined })).toBeUndefined();
    expect(checkParameters({ b: ['y', 'z\u0000'] })?.message).toBe("Invalid parameter 'b': contains U+0000");
  });

  it('requires a raw query to percent-decode to UTF-8, leaving a lone % as Node does', () => {
    expect(checkRawQuery('public_key=abc&x=%F0%9F%98%80&y=100%&z=%zz')).toBeUndefined();
    expect(checkRawQuery('public_key=%ED%A0%80')?.message).toBe("Invalid parameter 'public_key': is not UTF-8 once percent-decoded");
    expect(checkRawQuery('a=1&b%C3%A9=%FF')?.message).toContain("'bé'");
    expect(checkRawQuery('x%FF=1')?.message).toContain('parameter name');
    expect(checkRawQuery('a=%C3')?.errcode).toBe('M_INVALID_PARAM'); // cut short
  });
});

describe('x-tessera-max-json-bytes on store-invite extra fields', () => {
  const validate = operations.invite.body!;
  const body = (extra: unknown) => ({ medium: 'email', address: 'a@example.org', room_id: '!r:hs', sender: '@b:hs', extra });
  const fits = (v: unknown) => Buffer.byteLength(JSON.stringify(v)) <= 4096;

  it('counts exactly the bytes JSON.stringify writes, around the bound', () => {
    const shapes: ((pad: string) => unknown)[] = [
      (p) => p,
      (p) => [p, 1, -0.5, 1e21, true, null, [], {}],
      (p) => ({ 'ké\u0001"\\': p, n: [{ m: [false] }], e: {} }),
      (p) => `${p}"\\\n\t\u0000\u001f\u2028😀é`,
      (p) => ({ deep: { deeper: [[[p]]] } }),
    ];
    for (const shape of shapes) {
      const base = Buffer.byteLength(JSON.stringify(shape('')));
      for (const k of [4094 - base, 4095 - base, 4096 - base, 4097 - base, 4098 - base]) {
        const value = shape('x'.repeat(Math.max(k, 0)));
        expect(validate(body(value)), `${JSON.stringify(value).slice(-40)} (${Buffer.byteLength(JSON.stringify(value))} bytes)`).toBe(
          fits(value),
        );
      }
    }
  });

  it('stops early on a huge value, and sees nothing of the declared fields', () => {
    expect(validate(body(Array(100_000).fill('x')))).toBe(false);
    expect(validate({ ...body(1), room_name: '😀'.repeat(1024) })).toBe(true);
  });
});
