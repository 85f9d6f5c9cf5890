// Ephemeral key pairs for store-invite, made ahead of time on a worker thread.
//
// Every store-invite needs a fresh ed25519 pair. Made on the request path (encodedPairFromSeed), a pair costs
// the event loop a small but real share of a store-invite; one worker thread makes them in batches instead
// and posts each batch as one string, and the loop takes a pair in well under a microsecond
// (docs/performance.md has the figures). A worker is a V8 isolate of its own, several MiB of RSS, so it runs
// only during a burst: it starts once 32 pairs were made on the request path within one second, and stops
// after one to two minutes (`idleMs`) with fewer than 32 store-invites a minute. An identity server stores a
// few invitations an hour and now and then a burst (a room invites a mailing list): the few are made on the
// request path, and the thread is there for the burst.
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
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { encodedPairFromSeed } from '../keys/ed25519.js';
import type { RandomBytes } from '../platform/random.js';
import type { Logger } from '../platform/logger.js';

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

/** The worker's program (exported for tests that wrap it). */
export const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPrivateKey, randomBytes } = require('node:crypto');
parentPort.on('message', (count) => {
  const seeds = randomBytes(32 * count);
  try {
    const out = new Array(count);
    for (let i = 0; i < count; i++) {
      const d = seeds.toString('base64url', 32 * i, 32 * i + 32);
      const jwk = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: '' }, format: 'jwk' }).export({ format: 'jwk' });
      if (jwk.d !== d || typeof jwk.x !== 'string' || jwk.x.length !== 43) throw new Error('the JWK import did not derive the public key');
      out[i] = d + '.' + jwk.x;
    }
    parentPort.postMessage(out.join(' '));
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  } finally {
    seeds.fill(0);
  }
});
`;

/** Pairs made on the request path, one at a time (the worker turned off). */
export function inlineKeySource(random: RandomBytes): EphemeralKeySource {
  return {
    take() {
      const seed = random(32);
      try {
        return encodedPairFromSeed(seed);
      } finally {
        seed.fill(0);
      }
    },
    async close() {},
  };
}

export interface WorkerKeySourceOptions {
  log: Logger;
  /** For the request-path fallback. */
  random: RandomBytes;
  /** Pairs per batch; the next batch is asked for when fewer than this many are left. */
  batch?: number;
  /** The worker starts once this many pairs were made on the request path within one second. */
  startAfter?: number;
  /** The worker stops after one to two of these periods in which fewer than `startAfter` pairs were taken. */
  idleMs?: number;
  /** A worker that has not answered a request for a batch within this long is replaced. */
  stallMs?: number;
  /** Tests only: how a worker is started (the default runs the source below). */
  startWorker?: (source: string, options: WorkerOptions) => Worker;
  /** Tests only: another worker program speaking the same protocol. */
  workerSource?: string;
}

/** How often in a row a worker that exits or stalls is replaced before the source gives up on workers. */
const MAX_RESPAWNS = 3;

/**
 * Keeps up to about 2 x `batch` pairs ready (~90 bytes each) while invitations are being stored, asks the
 * worker for the next batch when fewer than `batch` are left, and makes pairs on the request path when none
 * is ready.
 *
 * Memory hygiene: a pair handed out is a slice of its batch's string, so the batch's text lives until the
 * last of its pairs is garbage-collected; JavaScript strings cannot be wiped. That is no weaker than the rest
 * of the pair's life: the seed is the invitation email's private key, kept in the outbox row until the email
 * is sent. The worker zeroes its seed bytes once encoded.
 */
export class WorkerKeySource implements EphemeralKeySource {
  private readonly batch: number;
  private readonly startAfter: number;
  private readonly idleMs: number;
  private readonly stallMs: number;
  private readonly fallback: EphemeralKeySource;
  private worker?: Worker;
  private idleTimer?: NodeJS.Timeout;
  /** Batches received, each a list of "seed.publicKey"; pairs are taken from the first, at `pos`. */
  private readonly batches: string[][] = [];
  private pos = 0;
  private ready = 0;
  /** A batch was asked for and has not arrived; since `askedAt` (performance.now()). */
  private asked = false;
  private askedAt = 0;
  private takes = 0;
  private takesAtLastTick = 0;
  /** When the last `startAfter` pairs were made on the request path (performance.now(), a ring). */
  private readonly inlineTimes: Float64Array;
  private inlineNext = 0;
  /** Workers replaced since the last good batch. */
  private respawns = 0;
  /** Closed, or workers could not be trusted or kept running: pairs come from the request path from now on. */
  private off = false;
  /** Pairs made on the request path because none was ready (tests). */
  fallbacks = 0;

  constructor(private readonly opts: WorkerKeySourceOptions) {
    this.batch = opts.batch ?? 256;
    this.startAfter = Math.max(1, opts.startAfter ?? 32);
    this.inlineTimes = new Float64Array(this.startAfter).fill(-Infinity);
    this.idleMs = opts.idleMs ?? 60_000;
    this.stallMs = opts.stallMs ?? 10_000;
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
      if (!this.worker) {
        if (!this.off && this.burst()) this.spawn();
      } else if (this.stalled()) {
        this.replace('did not answer', undefined);
      } else {
        this.refill();
      }
      this.fallbacks++;
      return this.fallback.take();
    }
    const item = head[this.pos++]!;
    if (this.pos === head.length) {
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
    let worker: Worker;
    try {
      // Throws at once where threads are refused: Node's permission model without --allow-worker, or no
      // thread to be had (EAGAIN under a container's process limit).
      worker = (this.opts.startWorker ?? ((src, o) => new Worker(src, o)))(this.opts.workerSource ?? WORKER_SOURCE, {
        eval: true,
        name: 'tessera-keys',
        // It holds one batch at a time; a small heap keeps its share of the RSS small.
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16, stackSizeMb: 1 },
      });
    } catch (err) {
      this.off = true;
      this.opts.log.error('ephemeral key worker could not start; key pairs are made on the request path from now on', {
        err: err as Error,
      });
      return;
    }
    worker.unref(); // an optimisation never keeps the process alive
    worker.on('message', (msg: unknown) => this.receive(worker, msg));
    worker.on('error', (err) => this.opts.log.error('ephemeral key worker failed', { err }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return; // stopped on purpose
      this.replace('exited', code);
    });
    this.worker = worker;
    this.takesAtLastTick = this.takes;
    this.idleTimer = setInterval(() => this.tick(), this.idleMs);
    this.idleTimer.unref();
    this.refill();
  }

  /** True once `startAfter` pairs were made on the request path within one second (a sliding second). */
  private burst(): boolean {
    const now = performance.now();
    this.inlineTimes[this.inlineNext] = now;
    this.inlineNext = (this.inlineNext + 1) % this.startAfter;
    // the oldest of the last startAfter, this one included (-Infinity until there were that many)
    return now - this.inlineTimes[this.inlineNext]! <= 1000;
  }

  /**
   * Every idleMs: a stalled worker is replaced (or just stopped when nothing was taken meanwhile); a worker
   * that handed out fewer than `startAfter` pairs since the last tick is stopped, so a burst followed by a
   * trickle does not keep the thread.
   */
  private tick(): void {
    const taken = this.takes - this.takesAtLastTick;
    this.takesAtLastTick = this.takes;
    if (this.asked) {
      if (this.stalled()) {
        if (taken === 0) void this.stopWorker();
        else this.replace('did not answer', undefined);
      }
      return;
    }
    if (taken < this.startAfter) void this.stopWorker();
  }

  private stalled(): boolean {
    return this.asked && performance.now() - this.askedAt > this.stallMs;
  }

  /** A worker exited or hung: another one, a bounded number of times in a row. */
  private replace(what: string, code: number | undefined): void {
    void this.stopWorker();
    if (++this.respawns <= MAX_RESPAWNS) {
      this.opts.log.warn(`ephemeral key worker ${what}; starting another`, { code });
      this.spawn();
    } else {
      this.off = true;
      this.opts.log.error(`ephemeral key worker ${what} again; key pairs are made on the request path from now on`, { code });
    }
  }

  private refill(): void {
    if (this.asked || !this.worker) return;
    this.asked = true;
    this.askedAt = performance.now();
    this.worker.postMessage(this.batch);
  }

  private receive(worker: Worker, msg: unknown): void {
    if (this.worker !== worker) return; // stopped while the batch was on its way
    this.asked = false;
    const pairs = typeof msg === 'string' ? msg.split(' ') : undefined;
    if (!pairs || pairs.some((p) => p.length !== 87 || p[43] !== '.')) {
      // It cannot make keys (its check failed) or sent something else: retrying would fail the same way.
      // Never the message itself in the log: it may hold key material.
      const error = (msg as { error?: unknown } | null)?.error;
      const reason = pairs ? 'a malformed batch' : typeof error === 'string' ? error.slice(0, 200) : `a ${typeof msg} message`;
      this.opts.log.error('ephemeral key worker cannot make key pairs; they are made on the request path from now on', { reason });
      this.off = true;
      void this.stopWorker();
      return;
    }
    this.respawns = 0;
    this.batches.push(pairs);
    this.ready += pairs.length;
    if (this.ready < this.batch) this.refill();
  }

  /** Stops the worker (if any) and forgets its pairs; the next take starts another unless the source is off. */
  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    this.asked = false;
    this.batches.length = 0;
    this.pos = 0;
    this.ready = 0;
    if (worker) await worker.terminate();
  }
}
