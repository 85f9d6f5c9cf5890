import { describe, expect, it } from 'vitest';
import { isPlainMailbox, normaliseAddress } from '../../src/platform/threepid.js';

describe('isPlainMailbox', () => {
  it.each(['alice@example.org', 'a.b+tag@sub.example.co.uk', "o'brien@example.ie", 'ünïcødé@exämple.org', 'x@xn--bcher-kva.example'])(
    'accepts %s',
    (a) => {
      expect(isPlainMailbox(a)).toBe(true);
    },
  );
  it.each([
    'Alice <alice@example.org>',
    'a@example.org, b@example.org',
    'a@example.org\nBcc: x@y.example',
    'a@example.org\r',
    'a b@example.org',
    '"a"@example.org',
    'a@[10.0.0.1]',
    'a@localhost',
    'a@example',
    '@example.org',
    'a@',
    'a@@example.org',
    'a..b@example.org',
    '.a@example.org',
    'a.@example.org',
    'a@-example.org',
    'a@example-.org',
    'a@example.123',
    'a(comment)@example.org',
    `${'x'.repeat(65)}@example.org`,
    'a\u0085b@example.org',
    'a\u00a0b@example.org',
    'evil\u202egro.elpmaxe@x.example',
    'a\u200bb@example.org',
    `a@${'x'.repeat(250)}.org`,
    '',
  ])('refuses %j', (a) => {
    expect(isPlainMailbox(a)).toBe(false);
  });
});

describe('normaliseAddress', () => {
  it('case-folds email addresses, including multi-character folds', () => {
    expect(normaliseAddress('email', 'Alice@Example.ORG')).toBe('alice@example.org');
    expect(normaliseAddress('email', 'STRASSE@x.de')).toBe(normaliseAddress('email', 'straße@X.DE'));
    expect(normaliseAddress('email', 'ΣΊΣΥΦΟΣ@x.gr')).toBe(normaliseAddress('email', 'σίσυφος@x.gr'));
  });
  it('leaves other media alone', () => {
    expect(normaliseAddress('msisdn', '447700900000')).toBe('447700900000');
  });
});
