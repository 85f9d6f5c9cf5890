// BatchedReader: look-ups of one event-loop turn share one read; each caller gets its own answer.
import { describe, expect, it } from 'vitest';
import { BatchedReader, paddedIds, paddedLength, statementChunks } from '../../src/platform/db/batchedRead.js';

describe('BatchedReader', () => {
  it('answers the look-ups of one turn with one read, each its own value, split at maxBatch', async () => {
    const calls: number[][] = [];
    const reader = new BatchedReader<number, string>(async (keys) => {
      calls.push(keys);
      return keys.map((k) => `v${k}`);
    }, 4);
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((k) => reader.get(k)));
    expect(answers).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
    expect(calls).toEqual([
      [1, 2, 3, 4],
      [5, 6],
    ]);
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

describe('paddedIds', () => {
  it('pads an IN list with repeats of its first value, and leaves an empty one alone', () => {
    expect(paddedIds([7, 8, 9])).toEqual([7, 8, 9, 7]);
    expect(paddedIds([7, 8, 9, 10])).toEqual([7, 8, 9, 10]);
    expect(paddedIds([])).toEqual([]);
  });
});

describe('statementChunks', () => {
  const rows = (n: number) => Array.from({ length: n }, (_, i) => i);
  it('cuts rows into power-of-two chunks up to max on SQLite, in order, losing and repeating none', () => {
    expect(statementChunks(rows(45), true, 64).map((c) => c.length)).toEqual([32, 8, 4, 1]);
    expect(statementChunks(rows(100), true, 64).map((c) => c.length)).toEqual([64, 32, 4]);
    expect(statementChunks(rows(200), true, 64).map((c) => c.length)).toEqual([64, 64, 64, 8]);
    expect(statementChunks(rows(45), true, 64).flat()).toEqual(rows(45));
    const sizes = new Set(Array.from({ length: 300 }, (_, n) => statementChunks(rows(n + 1), true, 64).map((c) => c.length)).flat());
    expect([...sizes].sort((a, b) => a - b)).toEqual([1, 2, 4, 8, 16, 32, 64]);
  });
  it('cuts them into chunks of max elsewhere', () => {
    expect(statementChunks(rows(150), false, 64).map((c) => c.length)).toEqual([64, 64, 22]);
    expect(statementChunks([], true, 64)).toEqual([]);
  });
});
