// A request must arrive whole within server.requestTimeoutMs: a client that sends its headers and then
// trickles (or withholds) its body is answered 408 and disconnected, instead of holding a socket and its
// buffers for Node's default five minutes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('request timeout', () => {
  let srv: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-timeout-'));
    srv = await startTestServer({ dbUrl: join(dir, 'db.sqlite'), overrides: { server: { requestTimeoutMs: 1000 } } });
  });
  afterAll(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 408 and closes the connection of a body that does not arrive in time', async () => {
    const { port } = new URL(srv.url);
    const started = Date.now();
    const { answer, closedAfterMs } = await new Promise<{ answer: string; closedAfterMs: number }>((resolve, reject) => {
      let answer = '';
      const s = connect(Number(port), '127.0.0.1', () => {
        s.write(
          'POST /_matrix/identity/api/v1/bulk_lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"thr',
        );
      });
      s.setEncoding('latin1');
      s.on('data', (d: string) => (answer += d));
      s.on('error', reject);
      s.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started }));
      setTimeout(() => s.destroy(new Error('still open after 5 s')), 5000).unref();
    });
    expect(answer.startsWith('HTTP/1.1 408')).toBe(true);
    expect(closedAfterMs).toBeGreaterThanOrEqual(900);
    expect(closedAfterMs).toBeLessThan(3000);
    // Requests that arrive whole are unaffected.
    expect((await srv.call('POST', '/_matrix/identity/api/v1/bulk_lookup', { threepids: [] })).status).toBe(200);
  });
});
