// Verification emails queued straight through the session store: outbox rows for tests of the outbox itself.
import type { Stores } from '../../src/service.js';

/** Queues `n` verification sessions and their emails (recipients a0@example.org, a1@..., tokens t0, t1, ...) at `now`. */
export async function queueVerificationMails(store: Stores, n: number, now: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await store.sessions.insertSession(
      {
        sid: `sid${i}`,
        medium: 'email',
        address: `a${i}@example.org`,
        clientSecret: 's',
        token: `t${i}`,
        sendAttempt: 1,
        nextLink: null,
        createdAt: now,
        tokenExpiresAt: now + 1e6,
        validatedAt: null,
        expiresAt: now + 1e6,
      },
      { kind: 'verification', recipient: `a${i}@example.org`, payload: { token: `t${i}`, link: 'https://x' }, createdAt: now },
    );
  }
}
