// `npm start` as an operator runs it: a real process, configured by TESSERA_* variables.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnTessera } from '../helpers/process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the tessera process', () => {
  it('starts on a bare data directory, serves the API, and stops cleanly on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-proc-'));
    dirs.push(dataDir);
    const port = await freePort();
    const p = spawnTessera({ TESSERA_PORT: String(port), TESSERA_DATA_DIR: dataDir, TESSERA_SERVER_NAME: 'is.example.test' });
    try {
      await p.waitFor(/tessera listening/);
      expect(statSync(join(dataDir, 'signing.key')).mode & 0o777).toBe(0o600);
      expect(statSync(join(dataDir, 'tessera.sqlite')).isFile()).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/_matrix/identity/v2`);
      expect(await res.json()).toEqual({});
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.output()).not.toMatch(/"level":"error"/);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('refuses a bad configuration with every problem listed and exit code 2', async () => {
    const p = spawnTessera({ TESSERA_PORT: 'http', TESSERA_REDACT_CHARS: '0', TESSERA_DB_URL: 'postgres://x' });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('TESSERA_PORT');
    expect(p.output()).toContain('redactChars');
    expect(p.output()).toContain('database.url');
  });
});
