// Bulk look-ups pass through a FIFO gate (performance.bulkConcurrency) once their bodies are read: at most
// that many are processed at once, every one is still answered, a client that left while queued gets no
// work done, other requests never wait behind the gate, and clients trickling their bodies in hold no place.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/smtp.js';

const V1 = '/_matrix/identity/api/v1';

interface Instrumented {
  srv: TestServer;
  /** The most bulk database reads seen in progress at once. */
  peak(): number;
  calls(): number;
  /** Lets every held read finish (each read waits for this while `hold` is set). */
  release(): void;
  hold: boolean;
}

async function instrumented(bulkConcurrency: number, dirs: string[]): Promise<Instrumented> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-gate-'));
  dirs.push(dir);
  const srv = await startTestServer({ dbUrl: join(dir, 'db.sqlite'), overrides: { performance: { bulkConcurrency } } });
  const store = srv.service.deps.associations;
  const real = store.findMxidsByHash.bind(store);
  let inFlight = 0;
  let peak = 0;
  let calls = 0;
  let open: () => void = () => {};
  let gateOpen = new Promise<void>((r) => (open = r));
  const state: Instrumented = {
    srv,
    peak: () => peak,
    calls: () => calls,
    release: () => {
      state.hold = false;
      open();
      gateOpen = new Promise<void>((r) => (open = r));
    },
    hold: false,
  };
  store.findMxidsByHash = async (hashes, now) => {
    calls++;
    inFlight++;
    peak = Math.max(peak, inFlight);
    try {
      if (state.hold) await gateOpen;
      await new Promise((r) => setTimeout(r, 20));
      return await real(hashes, now);
    } finally {
      inFlight--;
    }
  };
  return state;
}

const bulk = (i: number) => ({ threepids: [['email', `nobody${i}@example.org`]] });

describe('bulk look-up gate', () => {
  const dirs: string[] = [];
  const servers: TestServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it.each([1, 3])('processes at most %i bulk look-ups at once and answers all of them', async (limit) => {
    const g = await instrumented(limit, dirs);
    servers.push(g.srv);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => g.srv.call('POST', `${V1}/bulk_lookup`, bulk(i))));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(answers.every((a) => Array.isArray(a.body.threepids))).toBe(true);
    expect(g.calls()).toBe(8);
    expect(g.peak()).toBe(limit); // reached (the requests overlap), never exceeded
    expect(g.srv.violations).toEqual([]);
  });

  it('does no work for a client that left while queued, and never holds up other requests', async () => {
    const g = await instrumented(1, dirs);
    servers.push(g.srv);
    g.hold = true;
    const first = g.srv.call('POST', `${V1}/bulk_lookup`, bulk(1)); // admitted, held inside the store
    await until(() => g.calls() === 1, 5000, 'the first look-up to reach the store');
    const leaving = new AbortController();
    const gone = fetch(`${g.srv.url}${V1}/bulk_lookup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(bulk(2)),
      signal: leaving.signal,
    }).catch((e: Error) => e);
    const third = g.srv.call('POST', `${V1}/bulk_lookup`, bulk(3));
    // Other operations pass while the gate is full.
    expect((await g.srv.call('GET', `${V1}/lookup?medium=email&address=x%40example.org`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    leaving.abort();
    expect(await gone).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 50));
    g.release();
    expect((await first).status).toBe(200);
    expect((await third).status).toBe(200);
    expect(g.calls()).toBe(2); // the first and the third; the one that left was skipped
    expect(g.srv.logs.filter((l) => /"level":"(error|warn)"/.test(l))).toEqual([]); // a client leaving is not a server error
  });

  it('gives no place to clients still sending their bodies', async () => {
    const g = await instrumented(1, dirs);
    servers.push(g.srv);
    const { port } = new URL(g.srv.url);
    // Two clients announce 1,000-byte bodies and send 6 bytes: they must not hold the one place.
    const slow: Socket[] = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<Socket>((resolve) => {
            const s = connect(Number(port), '127.0.0.1', () => {
              s.write(`POST ${V1}/bulk_lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"thr`);
              resolve(s);
            });
          }),
      ),
    );
    try {
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      const answer = await g.srv.call('POST', `${V1}/bulk_lookup`, bulk(9));
      expect(answer.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      for (const s of slow) s.destroy();
    }
  });
});
