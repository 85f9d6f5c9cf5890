// A FIFO admission gate: at most `limit` holders at once; the others wait and are admitted in arrival order.
//
// Bulk look-ups pass through one (performance.bulkConcurrency). Without it, a burst of 1,000-address
// look-ups is parsed, validated and hashed all at once and then queues for the database holding all of
// that: V8 promotes each call's working data to the old generation, the heap grows with the burst, and
// latency is unfair (the last call waits for all the others). The gate stands after the body parser, so a
// place is held only while a call is worked on, never while a slow client trickles its body in.
export class Gate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`gate limit must be a positive integer, not ${limit}`);
  }

  /** Holders now; waiters now. */
  get size(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /** Resolves once admitted; every admission must be paired with one `leave()`. */
  enter(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the place to the longest waiter, or frees it. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else if (this.active > 0) this.active--;
  }
}
