// CSPRNG bytes for tokens, session ids, boundaries and Message-IDs, drawn from a pool.
// Each node:crypto randomBytes call has a fixed cost whatever its size (filling 4 KiB costs about the same),
// and a store-invite with its email needs several, so one call fills a pool that serves ~200 of them.
// Every byte is handed out once, copied (never a view of the pool, which is refilled), and zeroed in the pool
// as it goes, so issued secrets do not linger there. Node's own crypto.randomUUID pools the same way.
import { randomBytes } from 'node:crypto';
/** n random bytes. */
export type RandomBytes = (n: number) => Buffer;

export function pooledRandomBytes(poolSize = 4096): RandomBytes {
  let pool = Buffer.alloc(0);
  let offset = 0;
  return (n: number) => {
    if (n > poolSize / 8) return randomBytes(n);
    if (offset + n > pool.length) {
      pool = randomBytes(poolSize);
      offset = 0;
    }
    const out = Buffer.allocUnsafe(n);
    pool.copy(out, 0, offset, offset + n);
    pool.fill(0, offset, offset + n);
    offset += n;
    return out;
  };
}
