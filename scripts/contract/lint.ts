// npm run contract:lint: lints every OpenAPI document under openapi/ with Redocly CLI (openapi/redocly.yaml,
// `recommended`) and Spectral (openapi/.spectral.yaml, `spectral:oas`), and fails on any error OR warning.
// Prints one count line per document and linter, then each rule with its count and first locations.
// `--all` lists every problem; `--json` prints the problems as JSON instead (for other tools); `--doc PATH`
// (repeatable) lints those documents instead of openapi/identity.yaml and openapi/homeserver.yaml.
import { relative, resolve } from 'node:path';
import { DOCUMENTS, binPath, root, runNode, seconds } from './common.js';

interface Problem {
  linter: 'redocly' | 'spectral';
  document: string;
  rule: string;
  severity: 'error' | 'warning' | 'info' | 'hint';
  line: number;
  col: number;
  where: string;
  message: string;
}

interface LintRun {
  linter: Problem['linter'];
  document: string;
  problems: Problem[];
  /** Problems a lint-ignore file hid (Redocly); shown so that hiding is never silent. */
  ignored: number;
  /** The tool itself failed (crash, bad config, unreadable output). */
  failure?: string;
  ms: number;
}

const MAX_PROBLEMS = '100000';

interface RedoclyJson {
  totals: { errors: number; warnings: number; ignored: number };
  problems: {
    ruleId: string;
    severity: 'error' | 'warn';
    message: string;
    location: { source: { ref: string }; pointer?: string; start?: { line: number; col: number } }[];
  }[];
}

async function redocly(document: string): Promise<LintRun> {
  const args = ['lint', '--config', 'openapi/redocly.yaml', '--format', 'json', '--max-problems', MAX_PROBLEMS, document];
  const r = await runNode(binPath('@redocly/cli', 'redocly'), args);
  const run: LintRun = { linter: 'redocly', document, problems: [], ignored: 0, ms: r.ms };
  let out: RedoclyJson;
  try {
    out = JSON.parse(r.stdout) as RedoclyJson;
  } catch {
    run.failure = `redocly exited ${r.code} without a JSON report:\n${r.stdout}\n${r.stderr}`.trim();
    return run;
  }
  run.ignored = out.totals.ignored;
  for (const p of out.problems) {
    const loc = p.location[0];
    run.problems.push({
      linter: 'redocly',
      document,
      rule: p.ruleId,
      severity: p.severity === 'error' ? 'error' : 'warning',
      line: loc?.start?.line ?? 0,
      col: loc?.start?.col ?? 0,
      where: loc?.pointer ?? '',
      message: p.message,
    });
  }
  const counted = out.totals.errors + out.totals.warnings;
  if (counted !== run.problems.length) run.failure = `redocly counted ${counted} problems but reported ${run.problems.length}`;
  return run;
}

interface SpectralJson {
  code: string | number;
  message: string;
  path: (string | number)[];
  severity: 0 | 1 | 2 | 3;
  source?: string;
  range: { start: { line: number; character: number } };
}

const SPECTRAL_SEVERITY = ['error', 'warning', 'info', 'hint'] as const;

async function spectral(document: string): Promise<LintRun> {
  const args = ['lint', '--ruleset', 'openapi/.spectral.yaml', '--fail-severity', 'warn', '--format', 'json', '--quiet', document];
  const r = await runNode(binPath('@stoplight/spectral-cli', 'spectral'), args);
  const run: LintRun = { linter: 'spectral', document, problems: [], ignored: 0, ms: r.ms };
  let out: SpectralJson[];
  try {
    out = JSON.parse(r.stdout) as SpectralJson[];
    if (!Array.isArray(out)) throw new Error('not an array');
  } catch {
    run.failure = `spectral exited ${r.code} without a JSON report:\n${r.stdout}\n${r.stderr}`.trim();
    return run;
  }
  for (const p of out) {
    const source = p.source ? relative(root, p.source) : document;
    run.problems.push({
      linter: 'spectral',
      document: source || document,
      rule: String(p.code),
      severity: SPECTRAL_SEVERITY[p.severity] ?? 'error',
      line: p.range.start.line + 1,
      col: p.range.start.character + 1,
      where: p.path.map(String).join('.'),
      message: p.message,
    });
  }
  // --fail-severity warn: spectral's own verdict must agree with the problems it listed.
  const failing = run.problems.filter((p) => p.severity === 'error' || p.severity === 'warning').length;
  if ((r.code !== 0) !== failing > 0) run.failure = `spectral exited ${r.code} with ${failing} errors/warnings listed:\n${r.stderr}`.trim();
  return run;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function report(runs: LintRun[], all: boolean): void {
  for (const run of runs) {
    const errors = run.problems.filter((p) => p.severity === 'error').length;
    const warnings = run.problems.filter((p) => p.severity === 'warning').length;
    const other = run.problems.length - errors - warnings;
    const extra = [other ? `${other} info/hint` : '', run.ignored ? `${run.ignored} ignored by a lint-ignore file` : '']
      .filter(Boolean)
      .join(', ');
    const status = run.failure ? 'TOOL FAILED' : errors + warnings === 0 ? 'ok' : 'FAIL';
    console.log(
      `${run.document.padEnd(26)} ${run.linter.padEnd(9)} ${plural(errors, 'error')}, ${plural(warnings, 'warning')}` +
        `${extra ? `, ${extra}` : ''}  [${status}, ${seconds(run.ms)}]`,
    );
    if (run.failure) console.log(run.failure.replace(/^/gm, '    '));
    const byRule = new Map<string, Problem[]>();
    for (const p of run.problems) byRule.set(`${p.severity} ${p.rule}`, [...(byRule.get(`${p.severity} ${p.rule}`) ?? []), p]);
    for (const [key, problems] of [...byRule].sort((a, b) => b[1].length - a[1].length)) {
      const first = problems[0]!;
      console.log(`    ${key} x${problems.length}: ${first.message}`);
      for (const p of all ? problems : problems.slice(0, 3)) console.log(`        ${p.document}:${p.line}:${p.col}  ${p.where}`);
      if (!all && problems.length > 3) console.log(`        ... ${problems.length - 3} more (--all lists them)`);
    }
  }
}

async function lint(documents: readonly string[]): Promise<LintRun[]> {
  // Two cores: each document's two linters run side by side, one document after the other.
  const runs: LintRun[] = [];
  for (const document of documents) runs.push(...(await Promise.all([redocly(document), spectral(document)])));
  return runs;
}

async function main(): Promise<void> {
  const started = performance.now();
  const docs = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--doc' ? [relative(root, resolve(a))] : []));
  const runs = await lint(docs.length > 0 ? docs : DOCUMENTS);
  const failed = runs.filter((r) => r.failure || r.problems.some((p) => p.severity === 'error' || p.severity === 'warning'));
  if (process.argv.includes('--json')) console.log(JSON.stringify(runs, null, 2));
  else report(runs, process.argv.includes('--all'));
  const total = runs.reduce((n, r) => n + r.problems.length, 0);
  console.log(
    failed.length === 0
      ? `contract:lint: ok (${runs.length} lint runs, ${seconds(performance.now() - started)})`
      : `contract:lint: FAILED: ${failed.length} of ${runs.length} lint runs, ${plural(total, 'problem')} (${seconds(performance.now() - started)})`,
  );
  process.exitCode = failed.length === 0 ? 0 : 1;
}

await main();
