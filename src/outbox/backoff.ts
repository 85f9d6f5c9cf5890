// The one retry delay of every outbox: exponential, capped, with jitter.

/**
 * Delay before the next attempt, after `attempts` attempts (>= 1): `initialMs * 2^(attempts - 1)`, capped at
 * `maxMs`, with "equal jitter": uniform in [d/2, d], so rows that failed together (a relay or homeserver that
 * was down) do not all come back at once, and no delay exceeds the cap. `random` is uniform in [0, 1).
 */
export function backoffMs(attempts: number, initialMs: number, maxMs: number, random: () => number): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
  return Math.max(1, Math.round(d / 2 + random() * (d / 2)));
}
