// Builds a running Tessera from a Config: store, keys, deps, HTTP server and workers. main.ts and tests use it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import type { Deps, Signals } from './deps.js';
import { createApp } from './app.js';
import { KeyRing } from './keys/KeyRing.js';
import { KnexStore } from './store/KnexStore.js';
import { noAccounts, type Authenticator } from './http/security.js';
import type { Logger } from './util/logger.js';
import { Sweeper } from './workers/Sweeper.js';
import { noFederation, type FederationClient } from './federation/types.js';

export interface Service {
  deps: Deps;
  server: Server;
  url: string;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  log: Logger;
  clock?: () => number;
  auth?: Authenticator;
  federation?: FederationClient;
  responseViolations?: string[];
  /** An already-listening server to mount on (tests listen first so the public URL knows the port). */
  server?: Server;
}

export async function buildDeps(config: Config, opts: ServiceOptions): Promise<Deps> {
  const store = await KnexStore.create({
    url: config.database.url,
    sqliteSynchronous: config.database.sqliteSynchronous,
    poolMax: config.database.poolMax,
    keyValidityCacheMs: config.performance.keyValidityCacheMs,
  });
  try {
    const keys = KeyRing.load({
      serverName: config.server.name,
      keyText: config.keys.signingKey || undefined,
      keyFile: config.keys.signingKeyFile,
      oldKeys: config.keys.trustedOldKeys,
      log: opts.log,
    });
    const signals: Signals = { mailQueued: () => {}, onbindQueued: () => {} };
    return {
      config,
      store,
      keys,
      auth: opts.auth ?? noAccounts,
      log: opts.log,
      signals,
      federation: opts.federation ?? noFederation,
      clock: opts.clock ?? Date.now,
      random: randomBytes,
      responseViolations: opts.responseViolations,
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

export async function startService(config: Config, opts: ServiceOptions): Promise<Service> {
  const deps = await buildDeps(config, opts);
  const app = await createApp(deps);
  const server = opts.server ?? createServer();
  server.on('request', app.callback());
  if (!server.listening) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.server.port, config.server.host, () => resolve());
    });
  }
  const sweeper = new Sweeper(deps.store, deps.log, deps.clock, config.invites.sweepIntervalMs);
  sweeper.start();
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    deps,
    server,
    url: `http://${host}:${addr.port}`,
    async stop() {
      await sweeper.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.store.close();
    },
  };
}
