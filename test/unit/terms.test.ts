// Terms files in Sydent's layout: parsing, the GET /terms shape, and which acceptances satisfy the gate.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Terms, TermsError } from '../../src/accounts/terms.js';
import { loadConfig } from '../../src/platform/config.js';
import { buildDeps } from '../../src/service.js';
import { createLogger } from '../../src/platform/logger.js';

const SYDENT = `
master_version: "1.0"
docs:
  terms_of_service:
    version: 2.0
    langs:
      en: { name: Terms, url: "https://x/tos-2.0-en" }
      fr: { name: Conditions, url: "https://x/tos-2.0-fr" }
  privacy:
    version: "1.2"
    langs:
      en: { name: Privacy, url: "https://x/privacy-1.2-en" }
`;

describe('Terms', () => {
  it("reads Sydent's layout, keeping versions as written", () => {
    const t = Terms.parse(SYDENT);
    expect(t.masterVersion).toBe('1.0');
    expect(t.toResponse()).toEqual({
      policies: {
        terms_of_service: {
          version: '2.0',
          en: { name: 'Terms', url: 'https://x/tos-2.0-en' },
          fr: { name: 'Conditions', url: 'https://x/tos-2.0-fr' },
        },
        privacy: { version: '1.2', en: { name: 'Privacy', url: 'https://x/privacy-1.2-en' } },
      },
    });
  });

  it('maps URLs of any language to their policy version and ignores unknown URLs', () => {
    const t = Terms.parse(SYDENT);
    expect(t.acceptancesFor(['https://x/tos-2.0-fr', 'https://x/tos-2.0-en', 'https://nope'])).toEqual([
      { policy: 'terms_of_service', version: '2.0' },
    ]);
  });

  it('is satisfied only by every current policy version', () => {
    const t = Terms.parse(SYDENT);
    expect(t.allAccepted([])).toBe(false);
    expect(t.allAccepted([{ policy: 'terms_of_service', version: '2.0' }])).toBe(false);
    expect(
      t.allAccepted([
        { policy: 'terms_of_service', version: '2.0' },
        { policy: 'privacy', version: '1.2' },
      ]),
    ).toBe(true);
    // an older version of a policy does not count once the file moves on
    expect(
      t.allAccepted([
        { policy: 'terms_of_service', version: '1.0' },
        { policy: 'privacy', version: '1.2' },
      ]),
    ).toBe(false);
  });

  it('no file, an empty file, or no docs: no policies and no gate', () => {
    expect(Terms.load('').empty).toBe(true);
    expect(Terms.parse('').toResponse()).toEqual({ policies: {} });
    expect(Terms.parse('master_version: "1"\n').allAccepted([])).toBe(true);
  });

  it('lists every problem of a malformed file', () => {
    const bad = `
docs:
  a: { version: "1", langs: {} }
  b: { langs: { en: { name: B, url: "https://x/b" } } }
  c: { version: "1", langs: { en: { name: C } } }
  d: { version: "1", langs: { en: { name: D, url: "https://x/b" } } }
`;
    let err: unknown;
    try {
      Terms.parse(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TermsError);
    const msg = (err as Error).message;
    expect(msg).toContain('docs.a.langs');
    expect(msg).toContain('docs.b.version');
    expect(msg).toContain('docs.c.langs.en');
    expect(msg).toContain('used twice');
    expect(() => Terms.parse('docs: [1, 2]')).toThrow(TermsError);
    expect(() => Terms.parse('{')).toThrow(TermsError);
  });

  it('a missing or malformed terms file stops start-up with a configuration error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-terms-'));
    try {
      writeFileSync(join(dir, 'bad.yaml'), 'docs:\n  a: 3\n');
      for (const file of [join(dir, 'missing.yaml'), join(dir, 'bad.yaml')]) {
        const config = loadConfig({ argv: [], env: { TESSERA_TERMS_FILE: file, TESSERA_DATA_DIR: dir } });
        expect(config.terms.file).toBe(file);
        await expect(buildDeps(config, { log: createLogger('silent') })).rejects.toThrow(/invalid configuration/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
