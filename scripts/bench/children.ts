// Child processes of the benchmark (Tessera, the Koa baseline): started, awaited, sampled, and always killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const live = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL: used on errors, SIGINT and exit, when there is no time to be polite). */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Last lines of stderr, for error messages. */
  stderrTail(): string;
  /** Resolves when the process exits (with its code or signal). */
  exited: Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Child {
  const proc = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (!proc.pid) throw new Error(`${name} did not start`);
  live.add(proc);
  let tail = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    tail = (tail + d).slice(-4000);
  });
  const exited = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      resolve(signal ? `signal ${signal}` : `code ${code}`);
    });
  });
  return {
    proc,
    pid: proc.pid,
    stderrTail: () => tail.trim(),
    exited,
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A free loopback port (listen on 0, close, hand the number to the child). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Polls `url` until it answers 200, the child exits, or the deadline passes. */
export async function waitReady(child: Child, name: string, url: string, deadlineMs = 60_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  let exited: string | undefined;
  void child.exited.then((how) => {
    exited = how;
  });
  while (Date.now() < until) {
    if (exited) throw new Error(`${name} exited (${exited}) before answering:\n${child.stderrTail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not answer ${url} within ${deadlineMs} ms:\n${child.stderrTail()}`);
}

/** Reads the first line a child prints on stdout (the baseline prints its port). */
export function firstLine(child: Child, deadlineMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no output within ${deadlineMs} ms:\n${child.stderrTail()}`)), deadlineMs);
    child.proc.stdout!.setEncoding('utf8');
    child.proc.stdout!.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
    void child.exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`exited (${how}):\n${child.stderrTail()}`));
    });
  });
}

/** Resident memory of a process in MiB from /proc (Linux); undefined elsewhere. */
export function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system, seconds) a process has used so far, from /proc (Linux); undefined elsewhere.
 * Compared before and after a run it gives the server's own CPU cost per request, a figure that does not
 * depend on how much of the machine the load generator took. With `mainThreadOnly`, the time of the
 * process's first thread alone: for node, the event loop's (JavaScript, parsing, SQLite's statements),
 * without the thread pool's (WAL flushes), the key worker's and V8's helper threads'.
 */
export function cpuSecondsOf(pid: number, mainThreadOnly = false): number | undefined {
  try {
    const stat = readFileSync(mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of proc(5))
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pid of a MariaDB/MySQL server running on this machine (`mariadbd` or `mysqld`, read from /proc), so that
 * a --mysql run against a local server can report the database server's CPU per request as well: it shares
 * the cores with Tessera and the load generator. Undefined when there is none, or more than one.
 */
export function localDatabaseServerPid(): number | undefined {
  const found: number[] = [];
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
        if (comm === 'mariadbd' || comm === 'mysqld') found.push(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    return undefined; // no /proc
  }
  return found.length === 1 ? found[0] : undefined;
}

/** USER_HZ: 100 on every Linux architecture Node supports. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * The peak resident memory of `pid` over a run (MiB). Exact where the kernel lets us reset the process's
 * VmHWM (`echo 5 > /proc/PID/clear_refs`, Linux 4.0+, same user): reset at the start, read at the stop.
 * Otherwise VmRSS sampled every `everyMs`, which misses short peaks: the harness's own event loop is busy
 * driving the load, and a sampler at 100 ms had reported 132 MiB for a store-invite run whose VmHWM was 149.
 * `before` is the VmHWM up to the reset, so that a caller can still report the peak over the whole run.
 */
export function peakRss(pid: number, everyMs = 100): { before: number | undefined; stop(): number | undefined } {
  const before = memoryOf(pid)?.hwmMiB;
  let exact = false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    exact = true;
  } catch {
    // not Linux, or not allowed: sample instead
  }
  let peak: number | undefined;
  const take = () => {
    const m = memoryOf(pid);
    if (m && !Number.isNaN(m.rssMiB)) peak = Math.max(peak ?? 0, m.rssMiB);
  };
  take();
  const timer = exact ? undefined : setInterval(take, everyMs);
  return {
    before: before === undefined || Number.isNaN(before) ? undefined : before,
    stop() {
      clearInterval(timer);
      if (exact) {
        const hwm = memoryOf(pid)?.hwmMiB;
        return hwm === undefined || Number.isNaN(hwm) ? undefined : hwm;
      }
      take();
      return peak;
    },
  };
}
