// A minimal homeserver for the bind scenario: HTTPS on loopback (the test fixtures' self-signed
// certificate; Tessera runs with TESSERA_FEDERATION_VERIFY_TLS=false and 127.0.0.1 allowed), answering
// POST /_matrix/federation/v1/3pid/onbind with 200 {} at once and counting the calls whose body carries
// the expected number of invites. Anything else answers 404 and is counted as unexpected.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ONBIND_PATH } from '../../src/associations/OnbindWorker.js';

export interface BenchHomeserver {
  /** `127.0.0.1:<port>`: the server name of the mxids bound in the scenario. */
  serverName: string;
  /** onbind calls answered whose body had `invitesPerCall` invites. */
  readonly onbindCalls: number;
  /** Requests that were not a well-formed onbind call. */
  readonly unexpected: number;
  close(): Promise<void>;
}

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url)), 'utf8');

export async function startBenchHomeserver(invitesPerCall: number): Promise<BenchHomeserver> {
  let onbindCalls = 0;
  let unexpected = 0;
  const server: Server = createServer(
    { cert: fixture('fake-homeserver.cert.pem'), key: fixture('fake-homeserver.key.pem') },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let ok = false;
        if (req.method === 'POST' && req.url === ONBIND_PATH) {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { invites?: unknown[]; mxid?: unknown };
            ok = Array.isArray(body.invites) && body.invites.length === invitesPerCall && typeof body.mxid === 'string';
          } catch {
            ok = false;
          }
        }
        if (ok) onbindCalls++;
        else unexpected++;
        res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
        res.end(ok ? '{}' : '{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}');
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    serverName: `127.0.0.1:${port}`,
    get onbindCalls() {
      return onbindCalls;
    },
    get unexpected() {
      return unexpected;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
