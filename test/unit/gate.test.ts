import { describe, expect, it } from 'vitest';
import { Gate } from '../../src/platform/http/gate.js';

describe('Gate', () => {
  it('admits up to its limit at once and the rest in arrival order', async () => {
    const gate = new Gate(2);
    const admitted: number[] = [];
    const entries = [0, 1, 2, 3, 4].map((i) => gate.enter().then(() => admitted.push(i)));
    await Promise.resolve();
    await Promise.resolve();
    expect(admitted).toEqual([0, 1]);
    expect(gate.size).toEqual({ active: 2, waiting: 3 });
    gate.leave();
    await entries[2];
    expect(admitted).toEqual([0, 1, 2]);
    expect(gate.size).toEqual({ active: 2, waiting: 2 }); // the place was handed over, not freed
    gate.leave();
    gate.leave();
    await Promise.all(entries);
    expect(admitted).toEqual([0, 1, 2, 3, 4]);
    gate.leave();
    gate.leave();
    expect(gate.size).toEqual({ active: 0, waiting: 0 });
    gate.leave(); // one leave too many does not make room for a third holder
    await gate.enter();
    await gate.enter();
    let third = false;
    void gate.enter().then(() => (third = true));
    await Promise.resolve();
    expect(third).toBe(false);
  });

  it('refuses a limit that would admit nobody', () => {
    expect(() => new Gate(0)).toThrow(/positive integer/);
    expect(() => new Gate(1.5)).toThrow(/positive integer/);
  });
});
