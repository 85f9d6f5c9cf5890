// Builds a running Tessera from a Config: store, keys, deps, HTTP server and workers. main.ts and tests use it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './platform/config.js';
import type { Deps, Signals } from './deps.js';
import { createApp } from './platform/http/app.js';
import { handlers } from './handlers.js';
import { ServerKeyCache, XMatrixVerifier } from './federation/xMatrix.js';
import { KeyRing } from './keys/KeyRing.js';
import { KnexStore } from './store/KnexStore.js';
import type { Authenticator } from './platform/http/security.js';
import type { Logger } from './platform/logger.js';
import { Sweeper } from './platform/Sweeper.js';
import { pooledRandomBytes } from './platform/random.js';
import type { FederationClient } from './federation/types.js';
import { federationClientFromConfig } from './federation/client.js';
import { ConfigError } from './platform/config.js';
import { Terms, TermsError } from './accounts/terms.js';
import { AccountAuthenticator } from './accounts/accounts.js';
import { RateLimiter } from './platform/RateLimiter.js';
import { join } from 'node:path';
import { MailWorker } from './mail/MailWorker.js';
import { MailRenderer } from './mail/render.js';
import { fileTransport, smtpTransport } from './mail/transport.js';
import { OnbindWorker } from './associations/OnbindWorker.js';
import { ensureLookupPepper } from './associations/pepper.js';
import { inlineKeySource, WorkerKeySource } from './invitations/ephemeralKeys.js';

export interface Service {
  deps: Deps;
  /** The mail-outbox worker (issue 3). */
  mailWorker: MailWorker;
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
  responseSeen?: Deps['responseSeen'];
  /** An already-listening server to mount on (tests listen first so the public URL knows the port). */
  server?: Server;
}

export async function buildDeps(config: Config, opts: ServiceOptions): Promise<Deps> {
  let terms: Terms;
  try {
    terms = Terms.load(config.terms.file);
  } catch (err) {
    throw err instanceof TermsError ? new ConfigError([err.message]) : err;
  }
  const store = await KnexStore.create({
    url: config.database.url,
    sqliteSynchronous: config.database.sqliteSynchronous,
    sqliteCacheMb: config.database.sqliteCacheMb,
    sqliteWalAutocheckpoint: config.database.sqliteWalAutocheckpoint,
    poolMax: config.database.poolMax,
    commitConcurrency: config.database.commitConcurrency,
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
    const clock = opts.clock ?? Date.now;
    const signals: Signals = { mailQueued: () => {}, onbindQueued: () => {} };
    const random = pooledRandomBytes();
    return {
      config,
      store,
      keys,
      ephemeralKeys: config.performance.keyWorker ? new WorkerKeySource({ log: opts.log, random }) : inlineKeySource(random),
      auth: opts.auth ?? new AccountAuthenticator(store, terms, clock),
      log: opts.log,
      signals,
      federation: opts.federation ?? federationClientFromConfig(config, opts.log, clock),
      limiter: new RateLimiter(store, clock, config.rateLimits.windowMs),
      clock,
      random,
      responseViolations: opts.responseViolations,
      responseSeen: opts.responseSeen,
      terms,
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

export async function startService(config: Config, opts: ServiceOptions): Promise<Service> {
  const deps = await buildDeps(config, opts);
  await ensureLookupPepper(deps); // binding (issue 5): before the first lookup request
  // Homeserver-signed requests (unbind): the origin's keys are fetched over the federation client and cached.
  const xMatrix = new XMatrixVerifier(config.server.name, new ServerKeyCache({ federation: deps.federation, clock: deps.clock, log: deps.log }));
  const app = await createApp(deps, handlers, xMatrix);
  // Checked every second, not Node's default 30 s, so the timeout below holds to about a second.
  const server = opts.server ?? createServer({ connectionsCheckingInterval: 1000 });
  server.requestTimeout = config.server.requestTimeoutMs;
  server.headersTimeout = Math.min(server.headersTimeout, config.server.requestTimeoutMs);
  server.on('request', app.callback());
  if (!server.listening) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.server.port, config.server.host, () => resolve());
    });
  }
  const sweeper = new Sweeper(deps, config.invites.sweepIntervalMs);
  sweeper.start();
  // Mail (issue 3): the worker drains the outbox; store-invite's mailQueued() wakes it right after the commit.
  const mailWorker = new MailWorker({
    store: deps.store,
    log: deps.log,
    clock: deps.clock,
    random: deps.random,
    mail: config.mail,
    renderer: new MailRenderer(deps),
    transport: config.mail.smtp.host ? smtpTransport(config.mail) : fileTransport(join(config.dataDir, 'mail')),
  });
  deps.signals.mailQueued = () => mailWorker.wake();
  mailWorker.start();
  // binding (issue 5): the onbind worker drains its outbox, woken after each bind commits.
  const onbind = new OnbindWorker(deps);
  deps.signals.onbindQueued = () => onbind.wake();
  onbind.start();
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    deps,
    mailWorker,
    server,
    url: `http://${host}:${addr.port}`,
    async stop() {
      await mailWorker.stop();
      await sweeper.stop();
      await onbind.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.ephemeralKeys.close();
      await deps.store.close();
    },
  };
}
