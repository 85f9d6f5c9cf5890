// The ephemeral-key validity cache: bounded lifetime (<= 1 s), exact expiry, bounded size, invalidation.
import { describe, expect, it } from 'vitest';
import { KeyValidityCache } from '../../src/platform/db/validityCache.js';

describe('KeyValidityCache', () => {
  it('answers from memory for less than ttlMs of real time, then asks the database again', () => {
    let t = 0;
    const cache = new KeyValidityCache(1000, 100, () => t);
    cache.set('k', 5_000, cache.ticket(), t);
    expect(cache.get('k', 1_000)).toBe(true);
    t = 999;
    expect(cache.get('k', 1_000)).toBe(true);
    t = 1000;
    expect(cache.get('k', 1_000)).toBeUndefined(); // aged out: a deleted key is seen within one second
  });

  it('applies expiry exactly, from the stored expires_at, whatever the entry age', () => {
    const cache = new KeyValidityCache(1000, 100, () => 0);
    cache.set('k', 5_000, cache.ticket(), 0);
    expect(cache.get('k', 4_999)).toBe(true);
    expect(cache.get('k', 5_000)).toBe(false);
  });

  it('remembers unknown keys as invalid for the same bounded time', () => {
    const cache = new KeyValidityCache(1000, 100, () => 0);
    cache.set('nope', null, cache.ticket(), 0);
    expect(cache.get('nope', 0)).toBe(false);
  });

  it('drops a read that overlapped an invalidation, and invalidate() forgets everything', () => {
    const cache = new KeyValidityCache(1000, 100, () => 0);
    const ticket = cache.ticket();
    cache.invalidate(); // a DELETE ran while the read was in flight
    cache.set('k', 5_000, ticket, 0);
    expect(cache.get('k', 0)).toBeUndefined();
    cache.set('k', 5_000, cache.ticket(), 0);
    cache.invalidate();
    expect(cache.get('k', 0)).toBeUndefined();
  });

  it('holds at most maxEntries, evicting the oldest', () => {
    const cache = new KeyValidityCache(1000, 3, () => 0);
    for (const k of ['a', 'b', 'c', 'd']) cache.set(k, 1, cache.ticket(), 0);
    expect(cache.size).toBe(3);
    expect(cache.get('a', 0)).toBeUndefined();
    expect(cache.get('d', 0)).toBe(true);
  });

  it('caches nothing with ttlMs 0', () => {
    const cache = new KeyValidityCache(0, 3, () => 0);
    cache.set('a', 1, cache.ticket(), 0);
    expect(cache.get('a', 0)).toBeUndefined();
  });
});
