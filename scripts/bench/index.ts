// npm run bench [-- --quick] [--json FILE] [--seed N] [--mysql] [--duration S] [--connections 1,16,64] [--reps N]
//                  [--scenarios a,b] [--profile DIR]
//
// Starts Tessera (a child process, fresh SQLite or MariaDB database, log level warn), an SMTP sink that
// discards mail, and a bare Koa JSON endpoint (another child process) as the baseline. Drives each with
// autocannon at each connection count for a fixed time, in interleaved repetitions (per repetition and
// connection count, every scenario with a short baseline run right before it), and prints medians with each
// scenario's throughput as a ratio to the baseline run just before it. Loopback only; every child is killed on exit, error or SIGINT.
// Exits non-zero only when the harness itself breaks (a process does not start, a scenario gets no 2xx at all).
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import autocannon from 'autocannon';
import type { Knex } from 'knex';
import {
  cpuSecondsOf,
  freePort,
  localDatabaseServerPid,
  firstLine,
  killAllChildren,
  memoryOf,
  peakRss,
  startChild,
  waitReady,
  type Child,
} from './children.js';
import { startSmtpSink, type SmtpSink } from './smtpSink.js';
import { createBenchDatabase, openBenchKnex, seedInvites, storedKeys, type BenchDatabase } from './database.js';
import { BIND_PENDING_INVITES, SCENARIOS, type Scenario, type ScenarioContext } from './scenarios.js';
import { startBenchHomeserver, type BenchHomeserver } from './homeserver.js';
import { formatTable, summarise, type RunResult } from './report.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

interface Options {
  quick: boolean;
  json?: string;
  seed: number;
  mysqlUrl?: string;
  durationS: number;
  warmupS: number;
  connections: number[];
  reps: number;
  scenarios?: string[];
  profileDir?: string;
  spreadKeys: number;
}

function parseArgs(argv: string[]): Options {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
    return v;
  };
  const known = new Set(['--quick', '--json', '--seed', '--mysql', '--duration', '--connections', '--reps', '--scenarios', '--profile']);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a}`);
  const quick = argv.includes('--quick');
  const num = (flag: string, dflt: number) => {
    const v = value(flag);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag} must be a non-negative number`);
    return n;
  };
  const mysqlFlag = argv.includes('--mysql');
  const envUrl = process.env.TESSERA_DB_URL;
  return {
    quick,
    json: value('--json'),
    seed: Math.floor(num('--seed', 0)),
    mysqlUrl: envUrl && /^(mysql|mariadb):\/\//i.test(envUrl) ? envUrl : mysqlFlag ? 'mysql://root@127.0.0.1:3306/' : undefined,
    durationS: num('--duration', quick ? 2 : 8),
    warmupS: quick ? 0.5 : 2,
    connections: (value('--connections') ?? (quick ? '64' : '1,16,64')).split(',').map(Number),
    reps: Math.max(1, Math.floor(num('--reps', quick ? 1 : 3))),
    scenarios: value('--scenarios')?.split(','),
    profileDir: value('--profile'),
    spreadKeys: quick ? 5_000 : 20_000,
  };
}

/**
 * What package.json's start script sets before `node` (VAR=value words) and passes to it (the flags before
 * the entry point), so the bench runs Tessera exactly as `npm start` does; package.json is their one home.
 */
function startCommand(): { env: Record<string, string>; flags: string[] } {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const words = pkg.scripts.start!.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (words[0] && /^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  if (words[0] !== 'node' || words[words.length - 1] !== 'dist/src/main.js')
    throw new Error(`package.json start script is not "[VAR=value ...] node [flags] dist/src/main.js": ${pkg.scripts.start}`);
  return { env, flags: words.slice(1, -1) };
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

interface Target {
  id: string;
  url: string;
  requests?: autocannon.Request[];
  /** Report this pid's peak RSS during the run (Tessera only). */
  pid?: number;
  /** The server process, whose CPU time per request is reported. */
  serverPid: number;
  /** A local database server whose CPU time per request is reported too (--mysql). */
  dbPid?: number;
  /** Each answered request queued a delivery (an email, an onbind call) the run waits for. */
  delivers?: 'mail' | 'onbind';
  /** Delivering runs: how many deliveries of that kind have arrived so far (emails at the sink, onbind calls). */
  deliveredNow?: () => number;
  /** Before each run, outside the measured time. */
  beforeRun?: (durationS: number) => Promise<void>;
}

async function drive(t: Target, connections: number, durationS: number): Promise<autocannon.Result> {
  return autocannon({
    url: t.url,
    connections,
    duration: durationS,
    requests: t.requests,
    timeout: 10,
  });
}

/** How long each baseline run lasts: a quarter of a scenario's run, 0.5 to 2 s (it only needs the VM's current speed). */
function baselineSeconds(durationS: number): number {
  return Math.max(0.5, Math.min(2, durationS / 4));
}

/** Peak RSS per process over the whole bench: each run resets VmHWM, so the peaks before each reset are kept here. */
const peaks = new Map<number, number>();
function notePeak(pid: number, mib: number | undefined): void {
  if (mib !== undefined && !Number.isNaN(mib)) peaks.set(pid, Math.max(peaks.get(pid) ?? 0, mib));
}

/**
 * One run. `settle` (delivering scenarios: wait until the emails or onbind calls have arrived) runs before the server's CPU
 * time is read, so "CPU us/req" of such a scenario includes making those deliveries.
 */
async function measure(
  phase: string,
  rep: number,
  connections: number,
  t: Target,
  durationS: number,
  settle?: (r: autocannon.Result) => Promise<number | undefined>,
): Promise<RunResult> {
  const rss = t.pid ? peakRss(t.pid) : undefined;
  if (t.pid) notePeak(t.pid, rss?.before);
  const cpuBefore = cpuSecondsOf(t.serverPid);
  const loopBefore = cpuSecondsOf(t.serverPid, true);
  const dbBefore = t.dbPid === undefined ? undefined : cpuSecondsOf(t.dbPid);
  const deliveredBefore = t.deliveredNow?.();
  const harnessBefore = process.cpuUsage();
  const r = await drive(t, connections, durationS);
  const harness = process.cpuUsage(harnessBefore);
  // What had arrived, and what the server had spent, when the load stopped (before the drain).
  const deliveredAtEnd = t.deliveredNow?.();
  const cpuAtEnd = cpuSecondsOf(t.serverPid);
  const drainS = settle ? await settle(r) : undefined;
  const cpuAfter = cpuSecondsOf(t.serverPid);
  const loopAfter = cpuSecondsOf(t.serverPid, true);
  const dbAfter = t.dbPid === undefined ? undefined : cpuSecondsOf(t.dbPid);
  const rssPeakMiB = rss?.stop();
  if (t.pid) notePeak(t.pid, rssPeakMiB);
  const ok = r['2xx'];
  const total = ok + r.non2xx;
  return {
    phase,
    rep,
    connections,
    target: t.id,
    reqPerSec: ok / Math.max(r.duration, 0.001),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    ok,
    rssPeakMiB,
    drainS,
    harnessCpuUsPerReq: total === 0 ? undefined : (harness.user + harness.system) / total,
    cpuUsPerReq: cpuBefore === undefined || cpuAfter === undefined || total === 0 ? undefined : ((cpuAfter - cpuBefore) * 1e6) / total,
    loopUsPerReq: loopBefore === undefined || loopAfter === undefined || total === 0 ? undefined : ((loopAfter - loopBefore) * 1e6) / total,
    dbCpuUsPerReq: dbBefore === undefined || dbAfter === undefined || total === 0 ? undefined : ((dbAfter - dbBefore) * 1e6) / total,
    deliveredInRunPct:
      deliveredBefore === undefined || deliveredAtEnd === undefined || ok === 0
        ? undefined
        : (100 * (deliveredAtEnd - deliveredBefore)) / ok,
    cpuInRunUsPerReq: cpuBefore === undefined || cpuAtEnd === undefined || total === 0 ? undefined : ((cpuAtEnd - cpuBefore) * 1e6) / total,
  };
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const tmp = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  let sink: SmtpSink | undefined;
  let homeserver: BenchHomeserver | undefined;
  let db: BenchDatabase | undefined;
  let knex: Knex | undefined;
  let tessera: Child | undefined;
  let baseline: Child | undefined;
  const cleanup = async () => {
    await Promise.allSettled([tessera?.stop(), baseline?.stop()]);
    killAllChildren();
    await knex?.destroy().catch(() => {});
    await sink?.close().catch(() => {});
    await homeserver?.close().catch(() => {});
    await db?.dispose().catch((err: unknown) => log(`could not drop the bench database: ${String(err)}`));
    rmSync(tmp, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = (sig: string) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping`);
    killAllChildren();
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  try {
    const unknown = (opts.scenarios ?? []).filter((id) => !SCENARIOS.some((s) => s.id === id));
    if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`);
    const scenarios = SCENARIOS.filter((s) => !opts.scenarios || opts.scenarios.includes(s.id));
    sink = await startSmtpSink();
    homeserver = await startBenchHomeserver(BIND_PENDING_INVITES);
    const dataDir = join(tmp, 'data');
    mkdirSync(dataDir);
    db = await createBenchDatabase({ mysqlUrl: opts.mysqlUrl, dataDir });
    // A MySQL server on loopback is on these two cores too: its CPU per request is reported beside Tessera's.
    // (A loopback URL that is a tunnel to another machine would report the local server's CPU instead.)
    const loopback = opts.mysqlUrl !== undefined && /^(127\.\d+\.\d+\.\d+|localhost\.?|\[::1\])$/i.test(new URL(opts.mysqlUrl).hostname);
    const dbPid = loopback ? localDatabaseServerPid() : undefined;
    if (opts.mysqlUrl) {
      log(
        !loopback
          ? 'the database server is not on loopback: its CPU is not reported'
          : dbPid === undefined
            ? 'no single local MariaDB/MySQL server process found: its CPU is not reported'
            : `database server: pid ${dbPid}`,
      );
    }

    const port = await freePort();
    // The harness sets Tessera's environment itself; only these tuning knobs pass through, so a run can
    // compare them (e.g. TESSERA_SQLITE_SYNCHRONOUS=normal npm run bench).
    const passThrough = new Set([
      'TESSERA_SQLITE_SYNCHRONOUS',
      'TESSERA_SQLITE_CACHE_MB',
      'TESSERA_SQLITE_WAL_AUTOCHECKPOINT',
      'TESSERA_KEY_VALIDITY_CACHE_MS',
      'TESSERA_DB_POOL_MAX',
      'TESSERA_DB_COMMIT_CONCURRENCY',
      'TESSERA_BULK_CONCURRENCY',
      'TESSERA_HEAP_GROWING_PERCENT',
      'TESSERA_KEY_WORKER',
      'TESSERA_SMTP_MAX_CONNECTIONS',
      'TESSERA_LOG_REQUEST_CONTEXT',
    ]);
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_') || passThrough.has(k)),
    );
    Object.assign(env, {
      TESSERA_HOST: '127.0.0.1',
      TESSERA_PORT: String(port),
      TESSERA_DATA_DIR: dataDir,
      TESSERA_DB_URL: db.url,
      TESSERA_LOG_LEVEL: 'warn',
      TESSERA_SMTP_HOST: '127.0.0.1',
      TESSERA_SMTP_PORT: String(sink.port),
      TESSERA_SMTP_TLS: 'none',
      // bind-pending's homeserver: loopback, self-signed (never do this outside a test deployment).
      TESSERA_FEDERATION_VERIFY_TLS: 'false',
      TESSERA_FEDERATION_ALLOW: '127.0.0.1/32',
      TESSERA_MAIL_FROM: 'bench@bench.example.org',
      // One client IP and one sender send everything here; the limits would measure 429s, not us.
      TESSERA_RATELIMIT_INVITES_PER_IP: '0',
      TESSERA_RATELIMIT_INVITES_PER_SENDER: '0',
      TESSERA_RATELIMIT_INVITES_PER_ADDRESS: '0',
      TESSERA_RATELIMIT_REQUEST_TOKEN_PER_IP: '0',
      TESSERA_RATELIMIT_REQUEST_TOKEN_PER_ADDRESS: '0',
    });
    // Tessera runs as `npm start` runs it: compiled to dist/ (plain node, no TypeScript loader: ~37 MiB less RSS).
    log('building dist/ (npm run build)');
    const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
    // The environment and node flags `npm start` uses, then BENCH_NODE_ARGS to try other flags.
    const start = startCommand();
    Object.assign(env, start.env);
    const nodeArgs = [...start.flags, ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
    if (opts.profileDir) {
      mkdirSync(opts.profileDir, { recursive: true });
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', resolve(opts.profileDir));
    }
    log(`starting Tessera on ${db.kind} (port ${port}), the SMTP sink (port ${sink.port}) and the Koa baseline`);
    tessera = startChild('tessera', [...nodeArgs, 'dist/src/main.js'], env, ROOT);
    baseline = startChild('baseline', ['--import', 'tsx', 'scripts/bench/baselineServer.ts'], env, ROOT);
    const tesseraUrl = `http://127.0.0.1:${port}`;
    const [, baselineLine] = await Promise.all([
      waitReady(tessera, 'Tessera', `${tesseraUrl}/_matrix/identity/versions`),
      firstLine(baseline),
    ]);
    const baselineUrl = `http://127.0.0.1:${(JSON.parse(baselineLine) as { port: number }).port}/`;
    knex = openBenchKnex(db.url);

    const ctx: ScenarioContext = {
      url: tesseraUrl,
      keys: { few: [], spread: [] },
      runId: randomBytes(4).toString('hex'),
      knex,
      homeserver,
    };
    const runs: RunResult[] = [];
    let mailExpected = 0;

    const targets = (list: Scenario[]): Target[] => [
      { id: 'baseline (bare Koa)', url: baselineUrl, serverPid: baseline!.pid },
      ...list.map((s) => ({
        id: s.id,
        url: tesseraUrl,
        requests: s.requests(ctx),
        pid: tessera!.pid,
        serverPid: tessera!.pid,
        dbPid,
        delivers: s.delivers,
        deliveredNow: s.delivers && (() => (s.delivers === 'mail' ? sink!.messages : homeserver!.onbindCalls)),
        beforeRun: s.beforeRun && ((durationS: number) => s.beforeRun!(ctx, durationS)),
      })),
    ];

    let onbindExpected = 0;
    const delivered = { mail: () => sink!.messages, onbind: () => homeserver!.onbindCalls };
    const expected = { mail: () => mailExpected, onbind: () => onbindExpected };

    /**
     * Waits (bounded) until every delivery of this kind expected so far has arrived (emails at the sink,
     * onbind calls at the homeserver); returns the seconds it took, or undefined when it gave up. Called after
     * each delivering run, so the next scenario is not measured while a worker is still draining this one's
     * backlog, and the drain time (and its CPU) is part of what the run reports.
     */
    const waitFor = async (kind: 'mail' | 'onbind', limitMs: number): Promise<number | undefined> => {
      const started = Date.now();
      let last = -1;
      let lastChange = Date.now();
      while (Date.now() - started < limitMs && delivered[kind]() < expected[kind]()) {
        if (delivered[kind]() !== last) {
          last = delivered[kind]();
          lastChange = Date.now();
        } else if (Date.now() - lastChange > 3000) break; // no progress: the pipeline is absent or stuck
        await new Promise((r) => setTimeout(r, 50));
      }
      return delivered[kind]() >= expected[kind]() ? (Date.now() - started) / 1000 : undefined;
    };

    /** After a delivering run: its deliveries are now expected; wait for them. */
    const drainOf = (kind: 'mail' | 'onbind') => (r: autocannon.Result) => {
      if (kind === 'mail') mailExpected += r['2xx'];
      else onbindExpected += r['2xx'];
      return waitFor(kind, 30_000);
    };

    const runPhase = async (phase: string, list: Scenario[], refreshSpread: boolean) => {
      for (const s of list) await s.prepare?.(ctx);
      if (refreshSpread && list.some((s) => s.id === 'isvalid-spread')) {
        // Enough distinct stored keys that a one-second validity cache cannot serve the look-ups.
        const have = await storedKeys(knex!, opts.spreadKeys);
        if (have.length < opts.spreadKeys) {
          const storeInvite = SCENARIOS.find((s) => s.id === 'store-invite')!;
          const r = await autocannon({
            url: tesseraUrl,
            connections: 64,
            amount: opts.spreadKeys - have.length,
            requests: storeInvite.requests(ctx),
            timeout: 10,
          });
          mailExpected += r['2xx'];
        }
        ctx.keys.spread = await storedKeys(knex!, opts.spreadKeys);
        log(`isvalid-spread rotates over ${ctx.keys.spread.length} stored keys`);
      }
      const ts = targets(list);
      // Warm-up (not measured): JIT, connection pools, page cache.
      for (const t of ts) {
        await t.beforeRun?.(opts.warmupS);
        const r = await drive(t, 16, opts.warmupS);
        if (t.delivers) await drainOf(t.delivers)(r);
      }
      const [baselineTarget, ...scenarioTargets] = ts;
      const report = (rep: number, c: number, t: Target, r: RunResult) =>
        log(
          `${phase} rep ${rep} c=${c} ${t.id}: ${Math.round(r.reqPerSec)} req/s, p99 ${r.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}, ${r.cpuUsPerReq?.toFixed(0) ?? '?'} us CPU/req (event loop ${r.loopUsPerReq?.toFixed(0) ?? '?'} us; load generator and SMTP sink: ${r.harnessCpuUsPerReq?.toFixed(0) ?? '?'} us${r.dbCpuUsPerReq === undefined ? '' : `; database server: ${r.dbCpuUsPerReq.toFixed(0)} us`})${r.ratio ? `, x${r.ratio.toFixed(2)}` : ''}${r.drainS === undefined ? '' : `, ${t.delivers === 'onbind' ? 'onbind calls' : 'mail'} drained ${r.drainS.toFixed(1)} s after`}${r.deliveredInRunPct === undefined ? '' : ` (${r.deliveredInRunPct.toFixed(0)}% of them during the run, when the server had spent ${r.cpuInRunUsPerReq?.toFixed(0) ?? '?'} us/req)`}`,
        );
      for (let rep = 1; rep <= opts.reps; rep++) {
        for (const c of opts.connections) {
          for (const t of scenarioTargets) {
            if (interrupted) throw new Error('interrupted');
            // The baseline is measured right before each scenario, and the scenario's ratio is to that run:
            // the VM's speed drifts by a third within minutes, so a baseline from several scenarios earlier
            // made ratios of 0.6 and 1.1 for the same code in one repetition.
            // (the scenario's own set-up, such as bind-pending's rows, is done first, so nothing comes between)
            await t.beforeRun?.(opts.durationS);
            const base = await measure(phase, rep, c, baselineTarget!, baselineSeconds(opts.durationS));
            runs.push(base);
            report(rep, c, baselineTarget!, base);
            const r = await measure(phase, rep, c, t, opts.durationS, t.delivers && drainOf(t.delivers));
            r.ratio = r.reqPerSec / base.reqPerSec;
            runs.push(r);
            report(rep, c, t, r);
          }
        }
      }
    };

    await runPhase('empty', scenarios, true);
    if (opts.seed > 0) {
      log(`seeding ${opts.seed.toLocaleString('en-US')} invitations through knex`);
      const started = Date.now();
      let lastLog = 0;
      const sample = await seedInvites(knex, opts.seed, (done) => {
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(`  ${done.toLocaleString('en-US')} seeded`);
        }
      });
      log(`seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // The spread look-ups now go over keys sampled from the whole seeded range, so they land all over the index.
      ctx.keys.spread = sample;
      await runPhase(
        `seeded ${opts.seed.toLocaleString('en-US')}`,
        scenarios.filter((s) => s.seeded),
        false,
      );
    }

    // Every stored invitation should become one email at the sink (the last wait; each mail run waited already).
    const finalDrain = await waitFor('mail', opts.quick ? 5_000 : 30_000);
    const finalOnbind = await waitFor('onbind', opts.quick ? 5_000 : 30_000);
    const mailDelivered = sink.messages;
    notePeak(tessera.pid, memoryOf(tessera.pid)?.hwmMiB);
    const hwm = peaks.get(tessera.pid);
    const alive = tessera.proc.exitCode === null && tessera.proc.signalCode === null;
    await tessera.stop();
    await baseline.stop();

    const summary = summarise(runs);
    const machine = {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    };
    const out = process.stdout;
    out.write(
      `\nTessera benchmark: ${db.kind}, ${opts.reps} repetition(s) x ${opts.durationS} s per run, connections ${opts.connections.join('/')}, ${new Date().toISOString()}\n`,
    );
    out.write(
      `machine: ${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, node ${machine.node}, load average at end ${machine.loadavg.join(' ')}\n`,
    );
    out.write(
      `medians over repetitions (the baseline row: over all its short runs, one before each scenario); "x baseline" = req/s / the bare Koa endpoint's req/s measured just before, at the same connection count;\n`,
    );
    out.write(
      `"CPU us/req" = the server process's own CPU time (user + system) per answered request, which the load generator sharing the cores does not distort;\n`,
    );
    out.write(
      `"loop us/req" = the same for its main thread alone: the event loop, the one serial resource (1e6 / it = the most req/s one process could answer)\n\n`,
    );
    out.write(`${formatTable(summary)}\n\n`);
    const inRunRows = summary.filter((r) => r.deliveredInRunPct !== undefined);
    if (inRunRows.length > 0) {
      out.write(
        `delivered while the load ran (the rest in "drain s"), medians: ${inRunRows.map((r) => `${r.phase} ${r.target} c=${r.connections} ${Math.round(r.deliveredInRunPct!)}%`).join(', ')}\n`,
      );
    }
    const dbRows = summary.filter((r) => r.dbCpuUsPerReq !== undefined);
    if (dbRows.length > 0) {
      out.write(
        `database server (pid ${dbPid}, on these cores too) CPU us/req, medians: ${dbRows.map((r) => `${r.phase} ${r.target} c=${r.connections} ${Math.round(r.dbCpuUsPerReq!)}`).join(', ')}\n`,
      );
    }
    out.write(`Tessera peak RSS (VmHWM) over the whole run: ${hwm === undefined ? 'n/a' : `${hwm.toFixed(0)} MiB`}\n`);
    out.write(
      `emails: ${mailExpected} invitations stored, ${mailDelivered} messages reached the SMTP sink${finalDrain === undefined ? ' (gave up waiting for the rest)' : ''}\n`,
    );
    if (onbindExpected > 0 || homeserver.unexpected > 0) {
      out.write(
        `onbind: ${onbindExpected} binds with pending invitations, ${homeserver.onbindCalls} onbind calls reached the homeserver${finalOnbind === undefined ? ' (gave up waiting for the rest)' : ''}${homeserver.unexpected ? `, ${homeserver.unexpected} unexpected requests` : ''}\n`,
      );
    }
    if (ctx.bind?.exhausted)
      out.write(
        `bind-pending ran out of prepared sessions ${ctx.bind.exhausted} times (those requests are its non-2xx): raise BIND_SESSIONS_PER_S\n`,
      );

    if (opts.json) {
      writeFileSync(
        opts.json,
        `${JSON.stringify({ when: new Date().toISOString(), machine, database: db.kind, options: { ...opts, mysqlUrl: undefined }, summary, runs, emails: { expected: mailExpected, delivered: mailDelivered, allDelivered: finalDrain !== undefined }, onbind: { expected: onbindExpected, delivered: homeserver.onbindCalls, unexpected: homeserver.unexpected, allDelivered: finalOnbind !== undefined }, tesseraPeakRssMiB: hwm }, null, 2)}\n`,
      );
      log(`results written to ${opts.json}`);
    }

    // The harness is broken (not merely slow) if Tessera died or a scenario got no successful response at all.
    const broken = summary.filter((r) => r.reqPerSec === 0).map((r) => `${r.phase}/${r.target}/c=${r.connections}`);
    if (!alive) {
      log('Tessera exited during the run');
      return 1;
    }
    if (broken.length > 0) {
      log(`no successful responses: ${broken.join(', ')}`);
      return 1;
    }
    return 0;
  } finally {
    await cleanup();
  }
}

process.on('exit', () => killAllChildren());
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // (SQL errors quote the whole statement: keep the message readable)
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`failed: ${text.length > 2000 ? `${text.slice(0, 1000)} ... ${text.slice(-800)}` : text}`);
    killAllChildren();
    process.exit(1);
  },
);
