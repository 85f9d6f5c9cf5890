// vitest globalSetup: holds the document's errcodes to what the server really answers.
//
// Every test server reports each answer's operation, status and errcode (test/helpers/server.ts writes them to the
// directory provided here). After a run of the whole suite with no failure, every errcode that an error response of
// the document lists for an operation must have been answered by that operation at that status somewhere in the
// suite: an errcode the server cannot answer is a false promise to typed clients. (The other direction, an answer
// the document does not list, fails the test that got it.) `500 M_UNKNOWN` is exempt: it is the answer to a defect,
// documented on every operation, and no test can provoke it on purpose.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { errcodesAt, identityDocument } from './identityDocument.js';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    errcodeDir: string;
  }
}

const ROOT = resolve(import.meta.dirname, '../..');
const EXEMPT = new Set(['500 M_UNKNOWN']);

/** `<operationId> <status> <errcode>` for every errcode the document lists on an error response. */
export function documentedErrcodes(): Set<string> {
  const out = new Set<string>();
  for (const item of Object.values<any>(identityDocument.paths)) {
    for (const op of Object.values<any>(item)) {
      for (const status of Object.keys(op.responses ?? {})) {
        for (const code of errcodesAt(op, status)) if (!EXEMPT.has(`${status} ${code}`)) out.add(`${op.operationId} ${status} ${code}`);
      }
    }
  }
  return out;
}

function testFiles(dir: string): string[] {
  return (readdirSync(join(ROOT, dir), { recursive: true }) as string[]).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f));
}

/** Every test of the task ran: none skipped, filtered out or left to do. */
function allRan(task: { mode: string; tasks?: unknown[] }): boolean {
  return task.mode === 'run' && (task.tasks ?? []).every((t) => allRan(t as { mode: string; tasks?: unknown[] }));
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-errcodes-'));
  project.provide('errcodeDir', dir);
  return () => {
    try {
      const files = project.vitest.state.getFiles();
      const ran = new Set(files.map((f) => relative(ROOT, f.filepath)));
      const whole = testFiles('test').every((f) => ran.has(f)) && !project.vitest.config.testNamePattern && files.every(allRan);
      const failed = files.some((f) => f.result?.state === 'fail');
      if (!whole || failed) return; // a partial (filtered, .only, skipped) or failed run proves nothing either way
      const seen = new Set<string>();
      for (const name of readdirSync(dir)) {
        for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) if (line) seen.add(line);
      }
      const never = [...documentedErrcodes()].filter((c) => !seen.has(c)).sort();
      if (never.length > 0) {
        // vitest reports an exception thrown here but still exits 0; the exit code is what CI reads.
        console.error(
          `errcode coverage FAILED: the document lists errcodes that no test got from the server (provoke them in a test, or drop them from the document):\n  ${never.join('\n  ')}`,
        );
        process.exitCode = 1;
      } else {
        console.log(`errcode coverage: all ${documentedErrcodes().size} documented (operation, status, errcode) answers were seen`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
