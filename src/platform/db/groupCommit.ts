// Group commit: writes that arrive while a transaction is in flight are queued and committed
// together in the next transaction, so N concurrent store-invites cost one commit (one fsync on SQLite)
// instead of N. Nothing waits for a batch to fill: a transaction starts on the next turn of the event loop
// (setImmediate), which only lets the requests already read from the sockets in this turn join it.
// That turn matters on SQLite: better-sqlite3 is synchronous, so a request's whole knex promise chain, commit
// included, would otherwise run to completion in microtasks before the next socket is even read, and no two
// requests would ever overlap to share a commit.
//
// Guarantees (test/unit/groupCommit.test.ts):
// - a caller's promise settles only after the transaction holding its rows committed or rolled back;
// - one item's failure never loses or wrongly commits another's rows: if anything in a batch fails, the
//   whole batch is rolled back and retried in halves, down to single items, so each caller gets exactly
//   its own outcome (all of its rows and success, or none of them and its own error).

interface Pending<T> {
  item: T;
  resolve(): void;
  reject(err: unknown): void;
}

export class GroupCommitter<T> {
  private queue: Pending<T>[] = [];
  private inFlight = 0;
  private scheduled = false;

  /**
   * @param commit writes every item in ONE transaction; resolves after COMMIT, rejects after ROLLBACK.
   * @param maxInFlight transactions at once (1 on SQLite, which has one writer anyway).
   * @param maxBatch most items per transaction.
   * @param batchWide tells errors that no item caused (the database unreachable, a timeout): a batch that
   *   fails with one is failed whole, every caller with that error, instead of being retried in parts.
   * @param gatherMs how long a batch waits for company after its first item (0: the next turn of the event
   *   loop). Callers that are not waiting on a client, such as an outbox recording outcomes, trade a few
   *   milliseconds for fewer transactions.
   */
  constructor(
    private readonly commit: (items: T[]) => Promise<void>,
    private readonly maxInFlight = 1,
    private readonly maxBatch = 256,
    private readonly batchWide: (err: unknown) => boolean = () => false,
    private readonly gatherMs = 0,
  ) {}

  /** Queues `item`; resolves once its rows are committed. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.pump();
    };
    if (this.gatherMs > 0 && this.queue.length < this.maxBatch) setTimeout(run, this.gatherMs);
    else setImmediate(run);
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  private async flush(batch: Pending<T>[]): Promise<void> {
    try {
      await this.commit(batch.map((p) => p.item));
    } catch (err) {
      if (batch.length === 1 || this.batchWide(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      // Nothing of this batch was committed. Find out whose rows failed by halving it: each half gets a
      // transaction of its own, down to single items, so every caller still gets exactly its own outcome.
      // One bad item in a batch of n costs about 2 log2(n) transactions rather than n; the committer's slot
      // is held meanwhile (with one slot, new invitations queue behind it). A batch that failed for its size
      // (MySQL's max_allowed_packet, hit only by many near-limit request bodies) succeeds in halves. An
      // error no item caused (batchWide) fails the whole batch at once: retrying parts against a database
      // that is gone would cost 2n - 1 attempts, each up to the pool's acquire timeout.
      const half = batch.length >> 1;
      await this.flush(batch.slice(0, half));
      await this.flush(batch.slice(half));
      return;
    }
    for (const p of batch) p.resolve();
  }
}
