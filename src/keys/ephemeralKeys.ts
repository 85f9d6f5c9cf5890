// Ephemeral key pairs for store-invite (issue 6), made ahead of time on a worker thread.
//
// Every store-invite needs a fresh ed25519 pair. Made on the request path (encodedPairFromSeed), a pair costs
// the event loop ~31 us of its ~450; one worker thread makes them in batches instead and posts each batch as
// one string, and the loop takes a pair in well under a microsecond. Alternating store-invite runs (README,
// Performance): ~2,970 -> ~3,370 req/s median, p99 40-61 -> 38-47 ms, loop ~450 -> ~390 us per request,
// CPU ~552 -> ~496 us (the thread costs less than the loop's own JWK calls did). A worker is a V8 isolate of
// its own, ~9 MiB of RSS, so it runs only while invitations are being stored: it starts at the first
// store-invite and stops after `idleMs` (default a minute) without one. An identity server stores a few
// invitations an hour and then a burst (a room invites a mailing list); the thread is there for the burst.
// `performance.keyWorker` (TESSERA_KEY_WORKER=false) turns it off.
//
// What it does not change: each pair is handed out once; a batch lives only in memory, so a crash or a stop
// loses only pairs nobody was given. When no pair is ready (the worker is starting, a burst outran it, it
// failed, or the source is closed) the pair is made on the request path, as without the worker: the worker
// can make store-invite faster, never block it.
//
// The worker's source is a string (`eval: true`): a dozen lines of plain JavaScript with no imports of ours,
// which run the same from dist/ under `npm start` and from src/ under vitest (which would not load a
// TypeScript file in a worker). It repeats encodedPairFromSeed's three lines and its check; a failed check
// there reaches receive() as an error and turns the worker off for good.
import { Worker } from 'node:worker_threads';
import { encodedPairFromSeed } from './ed25519.js';
import type { RandomBytes } from '../invites/token.js';
import type { Logger } from '../util/logger.js';

/** A pair as store-invite uses it: both halves in URL-safe unpadded base64. */
export interface EncodedKeyPair {
  /** The 32-byte seed (the private key). */
  seed: string;
  publicKey: string;
}

export interface EphemeralKeySource {
  /** A fresh pair, never handed out before. */
  take(): EncodedKeyPair;
  close(): Promise<void>;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPrivateKey, randomBytes } = require('node:crypto');
parentPort.on('message', (count) => {
  try {
    const seeds = randomBytes(32 * count);
    const out = new Array(count);
    for (let i = 0; i < count; i++) {
      const d = seeds.toString('base64url', 32 * i, 32 * i + 32);
      const jwk = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: '' }, format: 'jwk' }).export({ format: 'jwk' });
      if (jwk.d !== d || typeof jwk.x !== 'string' || jwk.x.length !== 43) throw new Error('the JWK import did not derive the public key');
      out[i] = d + '.' + jwk.x;
    }
    seeds.fill(0);
    parentPort.postMessage(out.join(' '));
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

/** Pairs made on the request path, one at a time (the worker turned off). */
export function inlineKeySource(random: RandomBytes): EphemeralKeySource {
  return {
    take: () => encodedPairFromSeed(random(32)),
    async close() {},
  };
}

export interface WorkerKeySourceOptions {
  log: Logger;
  /** For the request-path fallback. */
  random: RandomBytes;
  /** Pairs per batch; the next batch is asked for when fewer than this many are left. */
  batch?: number;
  /** The worker stops after between this long and twice this long without a pair taken. */
  idleMs?: number;
  /** Tests only: another worker program speaking the same protocol. */
  workerSource?: string;
}

/** How often a worker that exits on its own is replaced before the source gives up on workers. */
const MAX_RESPAWNS = 3;

/**
 * Keeps between `batch` and 2 x `batch` pairs ready (~90 bytes each) while invitations are being stored,
 * asks the worker for the next batch when fewer than `batch` are left, and makes pairs on the request path
 * when none is ready.
 */
export class WorkerKeySource implements EphemeralKeySource {
  private readonly batch: number;
  private readonly idleMs: number;
  private readonly fallback: EphemeralKeySource;
  private worker?: Worker;
  private idleTimer?: NodeJS.Timeout;
  /** Batches received, each a list of "seed.publicKey"; pairs are taken from the first, at `pos`. */
  private readonly batches: string[][] = [];
  private pos = 0;
  private ready = 0;
  private asked = false;
  private takes = 0;
  private takesAtLastTick = 0;
  private respawns = 0;
  /** Closed, or the worker could not be trusted: pairs come from the request path from now on. */
  private off = false;
  /** Pairs made on the request path because none was ready (tests). */
  fallbacks = 0;

  constructor(private readonly opts: WorkerKeySourceOptions) {
    this.batch = opts.batch ?? 256;
    this.idleMs = opts.idleMs ?? 60_000;
    this.fallback = inlineKeySource(opts.random);
  }

  /** Pairs ready to hand out. */
  get available(): number {
    return this.ready;
  }

  /** True while a worker is running (tests). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  take(): EncodedKeyPair {
    this.takes++;
    const head = this.batches[0];
    if (head === undefined) {
      if (!this.worker && !this.off) this.spawn();
      else this.refill();
      this.fallbacks++;
      return this.fallback.take();
    }
    const item = head[this.pos]!;
    head[this.pos] = ''; // not kept here once handed out
    if (++this.pos === head.length) {
      this.batches.shift();
      this.pos = 0;
    }
    if (--this.ready < this.batch) this.refill();
    const dot = item.indexOf('.');
    return { seed: item.slice(0, dot), publicKey: item.slice(dot + 1) };
  }

  async close(): Promise<void> {
    this.off = true;
    await this.stopWorker();
  }

  private spawn(): void {
    const worker = new Worker(this.opts.workerSource ?? WORKER_SOURCE, {
      eval: true,
      name: 'tessera-keys',
      // It holds one batch at a time; a small heap keeps its share of the RSS small.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16, stackSizeMb: 1 },
    });
    worker.unref(); // an optimisation never keeps the process alive
    worker.on('message', (msg: unknown) => this.receive(worker, msg));
    worker.on('error', (err) => this.opts.log.error('ephemeral key worker failed', { err }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return; // stopped on purpose
      this.clearWorker();
      if (++this.respawns <= MAX_RESPAWNS) {
        this.opts.log.warn('ephemeral key worker exited; starting another', { code });
        this.spawn();
      } else {
        this.off = true;
        this.opts.log.error('ephemeral key worker keeps exiting; key pairs are made on the request path from now on', { code });
      }
    });
    this.worker = worker;
    this.takesAtLastTick = this.takes;
    this.idleTimer = setInterval(() => {
      if (this.takes === this.takesAtLastTick) void this.stopWorker();
      this.takesAtLastTick = this.takes;
    }, this.idleMs);
    this.idleTimer.unref();
    this.refill();
  }

  private refill(): void {
    if (this.asked || !this.worker) return;
    this.asked = true;
    this.worker.postMessage(this.batch);
  }

  private receive(worker: Worker, msg: unknown): void {
    if (this.worker !== worker) return; // stopped while the batch was on its way
    this.asked = false;
    const pairs = typeof msg === 'string' ? msg.split(' ') : undefined;
    if (!pairs || pairs.some((p) => p.length !== 87 || p[43] !== '.')) {
      // It cannot make keys (its check failed) or sent something else: retrying would fail the same way.
      const reason = pairs ? 'a malformed batch' : String((msg as { error?: unknown } | null)?.error ?? msg);
      this.opts.log.error('ephemeral key worker cannot make key pairs; they are made on the request path from now on', { reason });
      this.off = true;
      void this.stopWorker();
      return;
    }
    this.batches.push(pairs);
    this.ready += pairs.length;
    if (this.ready < this.batch) this.refill();
  }

  /** Stops the worker (if any) and forgets its pairs; the next take starts another unless the source is off. */
  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    this.clearWorker();
    if (worker) await worker.terminate();
  }

  private clearWorker(): void {
    this.worker = undefined;
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    this.asked = false;
    for (const b of this.batches) b.fill('');
    this.batches.length = 0;
    this.pos = 0;
    this.ready = 0;
  }
}
