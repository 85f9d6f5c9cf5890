// Summaries and the printed table: medians over repetitions, ratios to the baseline run just before each run.

export interface RunResult {
  phase: string;
  rep: number;
  connections: number;
  target: string;
  /** Successful (2xx) responses per second over the run. */
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  ok: number;
  /** Peak VmRSS of the Tessera process during the run (MiB); undefined for the baseline. */
  rssPeakMiB?: number;
  /** Server CPU time (user + system) per answered request, microseconds (Linux). */
  cpuUsPerReq?: number;
  /** The same for the server's main thread alone (the event loop, which one request at a time runs on). */
  loopUsPerReq?: number;
  /** Delivering runs: seconds after the run until every email (or onbind call) so far had arrived. */
  drainS?: number;
  /** The harness process's own CPU (autocannon and the SMTP sink) per answered request, microseconds. */
  harnessCpuUsPerReq?: number;
  /** --mysql against a server on this machine: the database server's CPU per answered request, microseconds. */
  dbCpuUsPerReq?: number;
  /** Delivering runs: the share of the run's deliveries (emails, onbind calls) that had arrived when the load stopped. */
  deliveredInRunPct?: number;
  /** Delivering runs: the server's CPU per answered request up to the end of the load, before the drain. */
  cpuInRunUsPerReq?: number;
  /** reqPerSec / the reqPerSec of the baseline run just before this one (same phase, repetition, connections). */
  ratio?: number;
}

export interface SummaryRow {
  phase: string;
  target: string;
  connections: number;
  reps: number;
  reqPerSec: number;
  ratio?: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  rssPeakMiB?: number;
  cpuUsPerReq?: number;
  loopUsPerReq?: number;
  drainS?: number;
  dbCpuUsPerReq?: number;
  deliveredInRunPct?: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarise(runs: RunResult[]): SummaryRow[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const key = `${r.phase}\u0000${r.target}\u0000${r.connections}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const ratios = g.map((r) => r.ratio).filter((x): x is number => x !== undefined);
    const rss = g.map((r) => r.rssPeakMiB).filter((x): x is number => x !== undefined);
    const cpu = g.map((r) => r.cpuUsPerReq).filter((x): x is number => x !== undefined);
    const loop = g.map((r) => r.loopUsPerReq).filter((x): x is number => x !== undefined);
    const drain = g.map((r) => r.drainS).filter((x): x is number => x !== undefined);
    const db = g.map((r) => r.dbCpuUsPerReq).filter((x): x is number => x !== undefined);
    const inRun = g.map((r) => r.deliveredInRunPct).filter((x): x is number => x !== undefined);
    return {
      phase: g[0]!.phase,
      target: g[0]!.target,
      connections: g[0]!.connections,
      reps: g.length,
      reqPerSec: median(g.map((r) => r.reqPerSec)),
      ratio: ratios.length ? median(ratios) : undefined,
      p50: median(g.map((r) => r.p50)),
      p99: median(g.map((r) => r.p99)),
      errors: g.reduce((n, r) => n + r.errors, 0),
      non2xx: g.reduce((n, r) => n + r.non2xx, 0),
      rssPeakMiB: rss.length ? Math.max(...rss) : undefined,
      cpuUsPerReq: cpu.length ? median(cpu) : undefined,
      loopUsPerReq: loop.length ? median(loop) : undefined,
      drainS: drain.length ? median(drain) : undefined,
      dbCpuUsPerReq: db.length ? median(db) : undefined,
      deliveredInRunPct: inRun.length ? median(inRun) : undefined,
    };
  });
}

export function formatTable(rows: SummaryRow[]): string {
  const header = [
    'phase',
    'scenario',
    'conns',
    'req/s',
    'x baseline',
    'p50 ms',
    'p99 ms',
    'errors',
    'non-2xx',
    'CPU us/req',
    'loop us/req',
    'drain s',
    'peak RSS MiB',
  ];
  const body = rows.map((r) => [
    r.phase,
    r.target,
    String(r.connections),
    Math.round(r.reqPerSec).toLocaleString('en-US'),
    r.ratio === undefined ? '1.00' : r.ratio.toFixed(2),
    r.p50.toFixed(r.p50 < 10 ? 1 : 0),
    r.p99.toFixed(r.p99 < 10 ? 1 : 0),
    String(r.errors),
    String(r.non2xx),
    r.cpuUsPerReq === undefined ? '-' : Math.round(r.cpuUsPerReq).toLocaleString('en-US'),
    r.loopUsPerReq === undefined ? '-' : Math.round(r.loopUsPerReq).toLocaleString('en-US'),
    r.drainS === undefined ? '-' : r.drainS.toFixed(1),
    r.rssPeakMiB === undefined ? '-' : r.rssPeakMiB.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i <= 1 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}
