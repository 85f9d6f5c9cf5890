// The generated configuration reference and the example file stay in step with the schema.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_KEYS, loadConfig } from '../../src/platform/config.js';
import { getPath } from '../../src/platform/config/keys.js';
import { REFERENCE_PATH, renderReference } from '../../scripts/config-docs.js';

const EXAMPLE = 'docs/tessera.example.yaml';

describe('docs/configuration.md', () => {
  it('is current (npm run config:docs changes nothing)', () => {
    expect(readFileSync(REFERENCE_PATH, 'utf8'), 'docs/configuration.md is stale: run `npm run config:docs`').toBe(renderReference());
  });

  it('lists every key with its variable and aliases', () => {
    const doc = renderReference();
    for (const key of CONFIG_KEYS) {
      expect(doc).toContain(`| \`${key.path}\` |`);
      for (const name of [key.env, ...key.aliases]) expect(doc).toContain(`\`${name}\``);
    }
  });
});

describe(EXAMPLE, () => {
  it('loads, names every key, and holds the defaults', () => {
    const example = loadConfig({ argv: ['--config', EXAMPLE], env: {} });
    expect(example).toEqual(loadConfig({ argv: [], env: {} }));
    const raw = parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;
    expect(CONFIG_KEYS.filter((k) => getPath(raw, k.path) === undefined).map((k) => k.path)).toEqual([]);
  });
});
