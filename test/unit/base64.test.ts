import { describe, expect, it } from 'vitest';
import { canonicalKeyString, decodeAny, encodeUnpadded, encodeUrlSafe } from '../../src/platform/base64.js';

const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0x01]);

describe('base64', () => {
  it('encodes unpadded in both alphabets', () => {
    expect(encodeUnpadded(bytes)).toBe('+/+/AAE');
    expect(encodeUrlSafe(bytes)).toBe('-_-_AAE');
  });

  it('decodes standard, URL-safe, padded and space-for-plus forms to the same bytes', () => {
    for (const form of ['+/+/AAE', '-_-_AAE', '+/+/AAE=', ' / /AAE'.replace(/^ /, ' '), '-_-_AAE=']) {
      expect(decodeAny(form), form).toEqual(bytes);
    }
  });

  it('maps every form of a key to one canonical string', () => {
    expect(canonicalKeyString('+/+/AAE=')).toBe('-_-_AAE');
    expect(canonicalKeyString(' /+/AAE')).toBe('-_-_AAE');
    expect(canonicalKeyString('-_-_AAE')).toBe('-_-_AAE');
  });

  it('rejects what is not base64', () => {
    expect(decodeAny('not base64!')).toBeUndefined();
    expect(decodeAny('A')).toBeUndefined();
  });
});
