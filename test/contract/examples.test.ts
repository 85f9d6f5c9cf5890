// The contract tooling under scripts/contract/ passes on openapi/*.yaml: both linters clean (no error, no
// warning), every generated TypeScript client compiles strictly, every example matches its schema.
// A failure's message is the script's own report, which names each problem and where it is.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkExamples, formatFailures } from '../../scripts/contract/examples.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number;
  output: string;
}

function script(file: string, args: string[] = []): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', file, ...args],
      { cwd: root, maxBuffer: 64 * 1024 * 1024, timeout: 170_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        done({ code, output: `${stdout}${stderr}${err && typeof err.code !== 'number' ? err.message : ''}` });
      },
    );
  });
}

describe('contract tooling on openapi/', () => {
  it('passes Redocly (recommended) and Spectral (spectral:oas) with no error or warning', { timeout: 180_000 }, async () => {
    const run = await script('scripts/contract/lint.ts');
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('contract:lint: ok');
  });

  for (const generator of ['openapi-fetch', 'hey-api', 'orval']) {
    it(`generates a ${generator} client from identity.yaml that compiles with tsc --strict`, { timeout: 180_000 }, async () => {
      const run = await script('scripts/contract/sdk.ts', ['--only', generator]);
      expect(run.code, run.output).toBe(0);
      expect(run.output).toContain('contract:sdk: ok');
    });
  }

  it('has only examples that validate against their schemas', () => {
    const reports = checkExamples();
    expect(reports.map((r) => r.document)).toEqual(['openapi/identity.yaml', 'openapi/homeserver.yaml']);
    for (const r of reports) expect(r.checked, `${r.document}: no examples found`).toBeGreaterThan(0);
    expect(formatFailures(reports)).toBe('');
  });
});
