// The contract checker's table: one block per operation, one row per step (step, expected, got, verdict).
import type { CheckReport, Step } from './check.js';

const verdictText = (s: Step) => (s.verdict === 'pass' ? 'pass' : `${s.verdict}: ${s.reason ?? ''}`);

export function formatReport(report: CheckReport): string {
  const lines: string[] = [`Contract check of ${report.target} against openapi/identity.yaml`, ''];
  const ops = [...new Set(report.steps.map((s) => s.operation))];
  const width = (pick: (s: Step) => string, head: string) => Math.max(head.length, ...report.steps.map((s) => pick(s).length));
  const w = { step: width((s) => s.step, 'step'), expected: width((s) => s.expected, 'expected'), got: width((s) => s.got, 'got') };
  const row = (a: string, b: string, c: string, d: string) => `  ${a.padEnd(w.step)}  ${b.padEnd(w.expected)}  ${c.padEnd(w.got)}  ${d}`;
  for (const op of ops) {
    lines.push(op, row('step', 'expected', 'got', 'verdict'));
    for (const s of report.steps.filter((x) => x.operation === op)) lines.push(row(s.step, s.expected, s.got, verdictText(s)));
    lines.push('');
  }
  lines.push(`${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped`);
  return lines.join('\n');
}
