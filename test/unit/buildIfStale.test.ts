// `npm start` builds only when an input of the build changed since the last successful build
// (scripts/build-if-stale.cjs): checked on a scratch tree with modification times set explicitly.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const script = resolve(import.meta.dirname, '../../scripts/build-if-stale.cjs');
const run = (root: string, flag: string) => execFileSync(process.execPath, [script, flag, '--root', root], { encoding: 'utf8' }).trim();

describe('build-if-stale', () => {
  let root: string;
  const hourAgo = Date.now() / 1000 - 3600;
  const files = ['src/main.ts', 'src/platform/app.ts', 'generated/identity.types.ts', 'openapi/identity.yaml', 'package.json'];

  /** Every input and directory an hour old, then a build that began half an hour ago. */
  const builtAfterInputs = () => {
    for (const f of files) utimesSync(join(root, f), hourAgo, hourAgo);
    for (const d of ['src/platform', 'src', 'generated', 'openapi']) utimesSync(join(root, d), hourAgo, hourAgo);
    run(root, '--begin');
    run(root, '--stamp');
    utimesSync(join(root, 'dist/.build-stamp'), hourAgo + 1800, hourAgo + 1800);
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'tessera-stale-'));
    for (const f of files) {
      mkdirSync(join(root, f, '..'), { recursive: true });
      writeFileSync(join(root, f), 'x');
    }
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('is stale before any build, current after one, stale again once a source is saved', () => {
    expect(run(root, '--check')).toBe('stale');
    builtAfterInputs();
    expect(run(root, '--check')).toBe('current');
    utimesSync(join(root, 'src/platform/app.ts'), hourAgo + 1801, hourAgo + 1801);
    expect(run(root, '--check')).toBe('stale');
  });

  it('counts a deleted source and a changed document, and ignores the reference page the build writes', () => {
    builtAfterInputs();
    writeFileSync(join(root, 'openapi/identity.html'), 'built page');
    expect(run(root, '--check')).toBe('current');
    rmSync(join(root, 'src/platform/app.ts'));
    expect(run(root, '--check')).toBe('stale');
    writeFileSync(join(root, 'src/platform/app.ts'), 'x');
    builtAfterInputs();
    utimesSync(join(root, 'openapi/identity.yaml'), hourAgo + 1801, hourAgo + 1801);
    expect(run(root, '--check')).toBe('stale');
  });

  it('keeps the time the build started, so a source saved during the build is seen', () => {
    for (const f of files) utimesSync(join(root, f), hourAgo, hourAgo);
    run(root, '--begin');
    utimesSync(join(root, 'dist/.build-started'), hourAgo + 10, hourAgo + 10);
    utimesSync(join(root, 'src/main.ts'), hourAgo + 20, hourAgo + 20); // saved while the build ran
    run(root, '--stamp');
    expect(run(root, '--check')).toBe('stale');
  });
});
