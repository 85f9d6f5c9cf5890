// OutageTracker: one WARN when an outage starts, one INFO when a probe finds the database back, nothing between; and
// the scheduler's background failures routed through it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutageTracker } from '../../src/platform/db/OutageTracker.js';
import { createLogger } from '../../src/platform/logger.js';
import { Scheduler } from '../../src/platform/scheduler.js';
import { linesAt, parseLog } from '../helpers/logs.js';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' });
const level = (lines: string[], lvl: string) => linesAt(lines, lvl);

describe('OutageTracker', () => {
  let lines: string[];
  let up: boolean;
  let probes: number;
  let tracker: OutageTracker;

  beforeEach(() => {
    vi.useFakeTimers();
    lines = [];
    up = false;
    probes = 0;
    let now = 0;
    tracker = new OutageTracker({
      log: createLogger('info', (l) => lines.push(l)),
      clock: () => (now += 250),
      probe: async () => {
        probes++;
        if (!up) throw refused();
      },
      probeIntervalMs: 1000,
    });
  });
  afterEach(async () => {
    await tracker.close();
    vi.useRealTimers();
  });

  it('warns once when an outage starts, probes while it lasts, and logs its end once with what it refused', async () => {
    expect(tracker.absorbs(refused(), { path: '/_matrix/identity/v2/lookup' })).toBe(true);
    for (let i = 0; i < 99; i++) tracker.absorbs(refused(), { path: '/_matrix/identity/v2/lookup' });
    tracker.absorbs(Object.assign(new Error('pool'), { name: 'KnexTimeoutError' }), { job: 'mail outbox pass' });
    expect(tracker.down).toBe(true);
    expect(level(lines, 'WARN')).toHaveLength(1);
    expect(parseLog(lines[0]!)).toMatchObject({ path: '/_matrix/identity/v2/lookup', code: 'ECONNREFUSED' });
    expect(lines[0]).not.toContain('127.0.0.1'); // the code, never the driver's message

    await vi.advanceTimersByTimeAsync(3000);
    expect(probes).toBe(3);
    expect(lines).toHaveLength(1);

    up = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(tracker.down).toBe(false);
    expect(level(lines, 'INFO')).toEqual([
      expect.objectContaining({ msg: 'database available again', downMs: expect.any(Number), refusedRequests: 100, failedJobRuns: 1 }),
    ]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(probes).toBe(4); // no probing once it is back

    // The next failure is a new outage, logged as such.
    up = false;
    tracker.absorbs(refused(), { job: 'sweeping expired rows' });
    expect(level(lines, 'WARN')).toHaveLength(2);
  });

  it('leaves every other error to the caller, and starts no outage for it', async () => {
    expect(tracker.absorbs(new TypeError('a defect'), { path: '/x' })).toBe(false);
    expect(tracker.absorbs(Object.assign(new Error('dup'), { code: 'ER_DUP_ENTRY' }), { path: '/x' })).toBe(false);
    expect(tracker.down).toBe(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(probes).toBe(0);
    expect(lines).toEqual([]);
  });

  it('stops probing once closed', async () => {
    tracker.absorbs(refused(), { path: '/x' });
    await tracker.close();
    await vi.advanceTimersByTimeAsync(5000);
    expect(probes).toBe(0);
  });
});

describe('Scheduler.failed', () => {
  it('counts a background run that met the outage instead of logging it, and logs any other failure as an ERROR', async () => {
    const lines: string[] = [];
    const log = createLogger('info', (l) => lines.push(l));
    const tracker = new OutageTracker({ log, clock: Date.now, probe: async () => {} });
    const scheduler = new Scheduler(log, tracker);
    let fail: Error = refused();
    const job = scheduler.every({
      name: 'test job',
      intervalMs: 60_000,
      run: async () => {
        throw fail;
      },
    });
    await job.runNow();
    await job.runNow();
    expect(level(lines, 'WARN')).toEqual([expect.objectContaining({ job: 'test job', code: 'ECONNREFUSED' })]);
    expect(level(lines, 'ERROR')).toEqual([]);
    fail = new TypeError('a defect');
    await job.runNow();
    expect(level(lines, 'ERROR')).toEqual([expect.objectContaining({ msg: 'test job failed', err: expect.stringContaining('a defect') })]);
    await scheduler.stop();
    await tracker.close();
  });
});
