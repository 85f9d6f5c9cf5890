// BatchedReader (issue 6): look-ups of one event-loop turn share one read; each caller gets its own answer.
import { describe, expect, it } from 'vitest';
import { BatchedReader, paddedLength } from '../../src/store/batchedRead.js';

describe('BatchedReader', () => {
  it('answers the look-ups of one turn with one read, each its own value, split at maxBatch', async () => {
    const calls: number[][] = [];
    const reader = new BatchedReader<number, string>(async (keys) => {
      calls.push(keys);
      return keys.map((k) => `v${k}`);
    }, 4);
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((k) => reader.get(k)));
    expect(answers).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
    expect(calls).toEqual([[1, 2, 3, 4], [5, 6]]);
    expect(await reader.get(9)).toBe('v9'); // a later turn: a read of its own
    expect(calls).toHaveLength(3);
  });

  it('passes a failed read to every caller of that batch only, and refuses a short answer', async () => {
    let fail = true;
    const reader = new BatchedReader<number, number>(async (keys) => {
      if (fail) throw new Error('database down');
      return keys.slice(1);
    });
    const failed = await Promise.allSettled([reader.get(1), reader.get(2)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await expect(reader.get(3)).rejects.toThrow(/answered 0 of 1 keys/);
  });
});

describe('paddedLength', () => {
  it('rounds a batch size up to a power of two, so a read has at most 8 SQL texts up to 100 keys', () => {
    expect([1, 2, 3, 4, 5, 8, 9, 64, 65, 100].map(paddedLength)).toEqual([1, 2, 4, 4, 8, 8, 16, 64, 128, 128]);
    expect(new Set(Array.from({ length: 100 }, (_, i) => paddedLength(i + 1))).size).toBe(8);
  });
});
