// The ephemeral key source: pairs made ahead on a worker thread, each handed out once, with the
// request path taking over whenever no pair is ready or the worker cannot be trusted.
import { afterEach, describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import {
  inlineKeySource,
  WORKER_SOURCE,
  WorkerKeySource,
  type EncodedKeyPair,
  type WorkerKeySourceOptions,
} from '../../src/invitations/ephemeralKeys.js';
import { createLogger } from '../../src/platform/logger.js';
import { pooledRandomBytes } from '../../src/platform/random.js';

const sources: WorkerKeySource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

function source(opts: Partial<Omit<WorkerKeySourceOptions, 'log' | 'random'>> = {}): { keys: WorkerKeySource; lines: string[] } {
  const lines: string[] = [];
  // startAfter 1: the worker starts at the first take, unless a test is about the burst rule
  const keys = new WorkerKeySource({
    log: createLogger('debug', (l) => lines.push(l)),
    random: pooledRandomBytes(),
    startAfter: 1,
    ...opts,
  });
  sources.push(keys);
  return { keys, lines };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The seed's own public key, by an independent implementation. */
function expectSound(pair: EncodedKeyPair): void {
  const seed = Buffer.from(pair.seed, 'base64url');
  expect(seed).toHaveLength(32);
  expect(pair.seed).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(Buffer.from(nacl.sign.keyPair.fromSeed(seed).publicKey).toString('base64url')).toBe(pair.publicKey);
}

describe('WorkerKeySource', () => {
  it('(startAfter 1) starts at the first take, fills up ahead of use, hands out each pair once, and refills as pairs are taken', async () => {
    const { keys } = source({ batch: 16 });
    expect(keys.running).toBe(false); // nothing runs before an invitation is stored
    const seen = new Set<string>();
    const first = keys.take(); // made on the request path while the worker starts
    expectSound(first);
    seen.add(first.seed);
    expect(keys.running).toBe(true);
    await until(() => keys.available >= 16, 'the first batch');
    for (let round = 0; round < 6; round++) {
      // A batch's worth each round: the source asks for more at the first take, and the worker catches up between rounds.
      for (let i = 0; i < 16; i++) {
        const pair = keys.take();
        expectSound(pair);
        expect(seen.has(pair.seed)).toBe(false);
        seen.add(pair.seed);
      }
      await until(() => keys.available >= 16, `the refill after round ${round}`);
      expect(keys.available).toBeLessThan(32);
    }
    expect(seen.size).toBe(97);
    expect(keys.fallbacks).toBe(1);
  });

  it('makes pairs on the request path when none is ready, and after close', async () => {
    const { keys } = source({ batch: 8 });
    const early = keys.take(); // the worker has not answered yet
    expectSound(early);
    expectSound(keys.take());
    expect(keys.fallbacks).toBe(2);
    await until(() => keys.available >= 8, 'the first batch');
    await keys.close();
    expect(keys.running).toBe(false);
    expect(keys.available).toBe(0);
    expectSound(keys.take());
    expect(keys.running).toBe(false); // a closed source starts no worker
  });

  it('stops using a worker that reports it cannot make keys, and says so once', async () => {
    const failing = `require('node:worker_threads').parentPort.on('message', () =>
      require('node:worker_threads').parentPort.postMessage({ error: 'the JWK import did not derive the public key' }));`;
    const { keys, lines } = source({ batch: 8, workerSource: failing });
    expectSound(keys.take());
    await until(() => !keys.running, 'the source to give the worker up');
    for (let i = 0; i < 5; i++) expectSound(keys.take());
    expect(keys.running).toBe(false); // not started again
    expect(keys.fallbacks).toBe(6);
    expect(lines.filter((l) => l.includes('cannot make key pairs'))).toHaveLength(1);
    expect(lines.join('\n')).toContain('did not derive the public key');
  });

  it('refuses a malformed batch rather than hand out something that is not a key pair', async () => {
    const wrong = `require('node:worker_threads').parentPort.on('message', (n) =>
      require('node:worker_threads').parentPort.postMessage(Array(n).fill('not-a-key.pair').join(' ')));`;
    const { keys, lines } = source({ batch: 8, workerSource: wrong });
    expectSound(keys.take());
    await until(() => !keys.running, 'the source to give the worker up');
    expect(keys.available).toBe(0);
    expectSound(keys.take());
    expect(keys.running).toBe(false);
    expect(lines.join('\n')).toContain('malformed batch');
  });

  it('replaces a worker that exits, a bounded number of times', async () => {
    const dying = `process.exit(3);`;
    const { keys, lines } = source({ workerSource: dying });
    expectSound(keys.take());
    await until(() => lines.some((l) => l.includes('exited again')), 'the source to give up on workers');
    expect(keys.running).toBe(false);
    expect(lines.filter((l) => l.includes('exited; starting another'))).toHaveLength(3);
    expect(lines.filter((l) => l.includes('exited again'))).toHaveLength(1);
    expectSound(keys.take());
    expect(keys.running).toBe(false);
  });

  it('replaces a worker that does not answer while pairs are wanted, a bounded number of times; just stops it otherwise', async () => {
    const silent = `require('node:worker_threads').parentPort.on('message', () => {});`;
    const { keys, lines } = source({ workerSource: silent, idleMs: 20, stallMs: 100 });
    expectSound(keys.take());
    // nothing more is taken: the stalled worker is stopped, not replaced
    await until(() => !keys.running, 'the stalled, unused worker to stop');
    expect(lines.some((l) => l.includes('did not answer'))).toBe(false);
    // pairs wanted: each stall costs a replacement, three at most
    while (!lines.some((l) => l.includes('did not answer again'))) {
      expectSound(keys.take());
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(lines.filter((l) => l.includes('did not answer; starting another'))).toHaveLength(3);
    expect(keys.running).toBe(false);
    expectSound(keys.take());
    expect(keys.running).toBe(false);
  });

  it('notices a silent worker at the next take, not only at the periodic check', async () => {
    const silent = `require('node:worker_threads').parentPort.on('message', () => {});`;
    const { keys, lines } = source({ workerSource: silent, stallMs: 100 }); // the periodic check is a minute away
    expectSound(keys.take());
    await new Promise((r) => setTimeout(r, 150));
    expect(lines.some((l) => l.includes('did not answer'))).toBe(false);
    expectSound(keys.take());
    expect(lines.filter((l) => l.includes('did not answer; starting another'))).toHaveLength(1);
    expect(keys.running).toBe(true);
  });

  it('counts only failures in a row: a worker that dies after each good batch is always replaced', async () => {
    // the real program, which exits right after posting each batch
    const flaky = `{ const { parentPort } = require('node:worker_threads'); const post = parentPort.postMessage.bind(parentPort);
      parentPort.postMessage = (m) => { post(m); setTimeout(() => process.exit(7), 5); }; }
      { ${WORKER_SOURCE} }`;
    const { keys, lines } = source({ batch: 4, workerSource: flaky });
    const seen = new Set<string>();
    for (let round = 0; round < 6; round++) {
      keys.take();
      await until(() => keys.available >= 4, `batch ${round}`);
      for (let i = 0; i < 4; i++) {
        const pair = keys.take();
        expectSound(pair);
        expect(seen.has(pair.seed)).toBe(false);
        seen.add(pair.seed);
      }
      await until(() => lines.filter((l) => l.includes('exited; starting another')).length > round, `exit ${round}`);
    }
    expect(lines.some((l) => l.includes('exited again'))).toBe(false);
  });

  it('serves from the request path where no thread can be started', async () => {
    let tries = 0;
    const { keys, lines } = source({
      startWorker: () => {
        tries++;
        throw Object.assign(new Error('Access to this API has been restricted'), { code: 'ERR_ACCESS_DENIED' });
      },
    });
    for (let i = 0; i < 3; i++) expectSound(keys.take());
    expect(tries).toBe(1); // not tried again on every request
    expect(keys.fallbacks).toBe(3);
    expect(lines.filter((l) => l.includes('could not start'))).toHaveLength(1);
  });
});

describe('WorkerKeySource start', () => {
  it('starts a worker only for a burst: 32 pairs made on the request path within a sliding second', async () => {
    const { keys } = source({ startAfter: undefined });
    for (let i = 0; i < 31; i++) expectSound(keys.take());
    expect(keys.running).toBe(false);
    await new Promise((r) => setTimeout(r, 1100)); // those 31 are now more than a second old
    for (let i = 0; i < 31; i++) keys.take();
    expect(keys.running).toBe(false);
    keys.take(); // the 32nd within this second
    expect(keys.running).toBe(true);
    await until(() => keys.available >= 256, 'the first batch');
  });
});

describe('WorkerKeySource idle stop', () => {
  it('stops the worker once no pair is taken for a while, and starts another at the next take', async () => {
    const { keys } = source({ batch: 8, idleMs: 250 });
    keys.take();
    await until(() => keys.available >= 8, 'the first batch');
    // taking keeps it alive across several idle periods
    const until900 = Date.now() + 900;
    while (Date.now() < until900) {
      expectSound(keys.take());
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(keys.running).toBe(true);
    await until(() => !keys.running, 'the idle stop');
    expect(keys.available).toBe(0); // its pairs are forgotten, not kept for later
    const after = keys.fallbacks;
    expectSound(keys.take());
    expect(keys.fallbacks).toBe(after + 1);
    expect(keys.running).toBe(true);
    await until(() => keys.available >= 8, 'the new worker batch');
  });
});

describe('inlineKeySource', () => {
  it('makes a fresh sound pair per call', () => {
    const keys = inlineKeySource(pooledRandomBytes());
    const a = keys.take();
    const b = keys.take();
    expectSound(a);
    expectSound(b);
    expect(a.seed).not.toBe(b.seed);
  });
});
