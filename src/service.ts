// Builds a running Tessera from a Config: database and stores, keys, deps, HTTP server, and the scheduled workers
// (mail and onbind outboxes, the expiry sweeper). main.ts and tests use it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Config } from './platform/config.js';
import { ConfigError } from './platform/config.js';
import type { Deps, Signals } from './deps.js';
import { createApp } from './platform/http/app.js';
import { handlers } from './handlers.js';
import { ServerKeyCache, XMatrixVerifier } from './federation/xMatrix.js';
import { KeyRing } from './keys/KeyRing.js';
import type { Authenticator } from './platform/http/security.js';
import type { Logger } from './platform/logger.js';
import { Database } from './platform/db/Database.js';
import { InstanceRegistry, newInstanceId, outboundPolicyFingerprint } from './platform/instances.js';
import { OutageTracker } from './platform/db/OutageTracker.js';
import { Scheduler } from './platform/scheduler.js';
import { Sweeper } from './platform/Sweeper.js';
import { pooledRandomBytes } from './platform/random.js';
import { RateLimiter } from './platform/RateLimiter.js';
import { Metrics } from './platform/metrics.js';
import { readinessCheck } from './platform/readiness.js';
import { metricsListener, type OpsEndpoints } from './platform/http/ops.js';
import { outsideRequests, setRequestContextEnabled } from './platform/requestContext.js';
import { KnexRateLimitStore, type RateLimitStore } from './platform/RateLimitStore.js';
import type { OutboxSettings } from './outbox/OutboxWorker.js';
import type { FederationClient } from './federation/types.js';
import { federationClientFromConfig } from './federation/client.js';
import { Terms, TermsError } from './accounts/terms.js';
import { AccountAuthenticator } from './accounts/accounts.js';
import { KnexAccountStore, type AccountStore } from './accounts/AccountStore.js';
import { createMailWorker, type MailWorker } from './mail/MailWorker.js';
import { mailOutboxStore, type MailOutboxStore } from './mail/MailOutboxStore.js';
import { MailRenderer } from './mail/render.js';
import { fileTransport, smtpTransport } from './mail/transport.js';
import { createOnbindWorker, type OnbindWorker } from './associations/OnbindWorker.js';
import { onbindOutboxStore, type OnbindOutboxStore } from './associations/OnbindOutboxStore.js';
import { KnexAssociationStore, type AssociationStore } from './associations/AssociationStore.js';
import { ensureLookupPepper } from './associations/pepper.js';
import { KnexInviteStore, type InviteStore } from './invitations/InviteStore.js';
import { inlineKeySource, WorkerKeySource } from './invitations/ephemeralKeys.js';
import { KnexSessionStore, type SessionStore } from './validation/SessionStore.js';
import { deleteExpiredSessions } from './validation/sessions.js';
import { KnexSigningKeyStore, type SigningKeyStore } from './keys/SigningKeyStore.js';

/** Every store, each over the one database. */
export interface Stores {
  invites: InviteStore;
  sessions: SessionStore;
  associations: AssociationStore;
  accounts: AccountStore;
  rateLimits: RateLimitStore;
  mailOutbox: MailOutboxStore;
  onbindOutbox: OnbindOutboxStore;
  signingKeys: SigningKeyStore;
}

export function createStores(db: Database, opts: { keyValidityCacheMs?: number } = {}): Stores {
  const mailOutbox = mailOutboxStore(db);
  const onbindOutbox = onbindOutboxStore(db);
  return {
    invites: new KnexInviteStore(db, mailOutbox, opts),
    sessions: new KnexSessionStore(db, mailOutbox),
    associations: new KnexAssociationStore(db, onbindOutbox),
    accounts: new KnexAccountStore(db),
    rateLimits: new KnexRateLimitStore(db),
    mailOutbox,
    onbindOutbox,
    signingKeys: new KnexSigningKeyStore(db),
  };
}

/** An outbox's settings from its config section: mail and onbind name them alike. */
export function outboxSettings(section: OutboxSettings): OutboxSettings {
  const { initialBackoffMs, maxBackoffMs, giveUpAfterMs, leaseMs, leaseRenewMs, pollIntervalMs, concurrency, keepFinishedMs } = section;
  return { initialBackoffMs, maxBackoffMs, giveUpAfterMs, leaseMs, leaseRenewMs, pollIntervalMs, concurrency, keepFinishedMs };
}

export interface Service {
  deps: Deps;
  db: Database;
  stores: Stores;
  mailWorker: MailWorker;
  onbindWorker: OnbindWorker;
  sweeper: Sweeper;
  server: Server;
  url: string;
  /** Where /metrics is served when it has a listener of its own (metrics.port). */
  metricsUrl?: string;
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

/** Opens (and migrates) the database and builds the stores and the deps over it. */
export async function buildDeps(config: Config, opts: ServiceOptions): Promise<{ deps: Deps; db: Database; stores: Stores }> {
  let terms: Terms;
  try {
    terms = Terms.load(config.terms.file);
  } catch (err) {
    throw err instanceof TermsError ? new ConfigError([err.message]) : err;
  }
  const db = await Database.open({
    url: config.database.url,
    sqliteSynchronous: config.database.sqliteSynchronous,
    sqliteCacheMb: config.database.sqliteCacheMb,
    sqliteWalAutocheckpoint: config.database.sqliteWalAutocheckpoint,
    sqliteBusyTimeoutMs: config.database.sqliteBusyTimeoutMs,
    acquireTimeoutMs: config.database.acquireTimeoutMs,
    log: opts.log,
    poolMax: config.database.poolMax,
    commitConcurrency: config.database.commitConcurrency,
  });
  try {
    const stores = createStores(db, { keyValidityCacheMs: config.performance.keyValidityCacheMs });
    const keys = KeyRing.load({
      serverName: config.server.name,
      keyText: config.keys.signingKey || undefined,
      keyFile: config.keys.signingKeyFile,
      oldKeys: config.keys.trustedOldKeys,
      log: opts.log,
      clock: opts.clock ?? Date.now,
    });
    const clock = opts.clock ?? Date.now;
    // The key this instance loaded is recorded the first time it is seen; a rotation recorded by another instance
    // or by `tessera keys rotate` applies before the first request.
    if (config.keys.rotatedKeyLifetimeMs < config.invites.lifetimeMs) {
      opts.log.warn(
        'keys.rotatedKeyLifetimeMs is shorter than invites.lifetimeMs: after a rotation, invitations stored under the old key may outlive it',
        {
          rotatedKeyLifetimeMs: config.keys.rotatedKeyLifetimeMs,
          invitesLifetimeMs: config.invites.lifetimeMs,
        },
      );
    }
    await stores.signingKeys.recordIfAbsent(keys.keyId, keys.publicKey, clock());
    keys.apply(await stores.signingKeys.list(), opts.log);
    const signals: Signals = { mailQueued: () => {}, onbindQueued: () => {} };
    const random = pooledRandomBytes();
    const metrics = new Metrics(clock);
    const deps: Deps = {
      config,
      invites: stores.invites,
      sessions: stores.sessions,
      associations: stores.associations,
      accounts: stores.accounts,
      keys,
      ephemeralKeys: config.performance.keyWorker ? new WorkerKeySource({ log: opts.log, random }) : inlineKeySource(random),
      auth: opts.auth ?? new AccountAuthenticator(stores.accounts, terms, clock),
      log: opts.log,
      signals,
      federation: opts.federation ?? federationClientFromConfig(config, opts.log, clock),
      limiter: new RateLimiter(stores.rateLimits, clock, config.rateLimits.windowMs, (kind) => metrics.limited(kind)),
      clock,
      random,
      responseViolations: opts.responseViolations,
      responseSeen: opts.responseSeen,
      terms,
      outage: new OutageTracker({ log: opts.log, clock, probe: () => db.probe() }),
      metrics,
    };
    return { deps, db, stores };
  } catch (err) {
    await db.close();
    throw err;
  }
}

export async function startService(config: Config, opts: ServiceOptions): Promise<Service> {
  // Process-wide (one async context per process): the last service started in a process decides.
  setRequestContextEnabled(config.log.requestContext);
  const { deps, db, stores } = await buildDeps(config, opts);
  await ensureLookupPepper(deps); // before the first lookup request
  // Homeserver-signed requests (unbind): the origin's keys are fetched over the federation client and cached.
  const xMatrix = new XMatrixVerifier(
    config.server.name,
    new ServerKeyCache({ federation: deps.federation, clock: deps.clock, log: deps.log }),
  );
  const ready = readinessCheck({ db, outage: () => deps.outage.down, signingKeyLoaded: () => Boolean(deps.keys.signingKey?.key) });
  deps.metrics.watch({
    outboxes: { mail: () => stores.mailOutbox.backlog(), onbind: () => stores.onbindOutbox.backlog() },
    pool: () => db.poolUse(),
    outage: () => deps.outage.down,
  });
  const ownMetricsListener = config.metrics.enabled && config.metrics.port > 0;
  const ops: OpsEndpoints = { ready, metrics: config.metrics.enabled && !ownMetricsListener ? deps.metrics : undefined };
  const app = await createApp(deps, handlers, xMatrix, ops);
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
  // /metrics on a listener of its own: it can then be bound where only the scraper reaches it.
  let metricsServer: Server | undefined;
  if (ownMetricsListener) {
    const listener = createServer(metricsListener(deps.metrics));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(config.metrics.port, config.metrics.host, () => resolve());
    });
    metricsServer = listener;
  }
  const { log, clock } = deps;
  // Background jobs that find the database gone count towards the outage the requests see, rather than each logging
  // a stack per run.
  const scheduler = new Scheduler(log, deps.outage);
  // The outboxes' backoff jitter, from the injected randomness.
  const jitter = () => deps.random(4).readUInt32BE(0) / 0x1_0000_0000;
  const sweeper = new Sweeper({ scheduler, log, clock, intervalMs: config.invites.sweepIntervalMs }, [
    { what: 'expired invitations', deleteBatch: (now, limit) => stores.invites.deleteExpiredInvites(now, limit) },
    { what: 'expired imported ephemeral keys', deleteBatch: (now, limit) => stores.invites.deleteExpiredUnlinkedKeys(now, limit) },
    {
      what: 'revocations of expired invitations',
      deleteBatch: (now, limit) => stores.invites.deleteRevocationsBefore(now - config.invites.lifetimeMs, limit),
    },
    { what: 'expired access tokens', deleteBatch: (now, limit) => stores.accounts.deleteExpiredAccountTokens(now, limit) },
    { what: 'expired validation sessions', deleteBatch: (now, limit) => deleteExpiredSessions(deps, now, limit) },
    { what: 'finished rate-limit windows', deleteBatch: (_now, limit) => deps.limiter.sweep(limit) },
  ]);
  const transport = config.mail.smtp.host ? smtpTransport(config.mail) : fileTransport(join(config.dataDir, 'mail'));
  const mailWorker = createMailWorker({
    queue: stores.mailOutbox,
    scheduler,
    log,
    clock,
    random: jitter,
    settings: outboxSettings(config.mail),
    outcomes: deps.metrics.outboxOutcomes('mail'),
    renderer: new MailRenderer(deps),
    transport,
  });
  const onbindWorker = createOnbindWorker({
    queue: stores.onbindOutbox,
    federation: deps.federation,
    scheduler,
    log,
    clock,
    random: jitter,
    settings: outboxSettings(config.onbind),
    outcomes: deps.metrics.outboxOutcomes('onbind'),
  });
  // Requests that committed outbox rows wake their worker at once, rather than on its next poll.
  // Their passes are no request's own work: the log lines they write carry no request's id.
  const wakeMail = () => mailWorker.wake();
  const wakeOnbind = () => onbindWorker.wake();
  deps.signals.mailQueued = () => outsideRequests(wakeMail);
  deps.signals.onbindQueued = () => outsideRequests(wakeOnbind);
  const instance = new InstanceRegistry({
    db,
    log,
    clock,
    id: newInstanceId(),
    outboundPolicy: outboundPolicyFingerprint(config.federation.allow),
  });
  await instance.register();
  instance.schedule(scheduler);
  scheduler.every({
    name: 'signing keys',
    intervalMs: config.keys.refreshIntervalMs,
    run: async () => deps.keys.apply(await stores.signingKeys.list(), log),
  });
  scheduler.start();
  return {
    deps,
    db,
    stores,
    mailWorker,
    onbindWorker,
    sweeper,
    server,
    url: urlOf(server),
    metricsUrl: metricsServer && urlOf(metricsServer),
    async stop() {
      await scheduler.stop();
      await instance.remove().catch((err: unknown) => log.warn('could not remove the instance record', { err: err as Error }));
      transport.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (metricsServer) {
        metricsServer.closeAllConnections();
        await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      }
      await deps.ephemeralKeys.close();
      await deps.outage.close();
      await db.close();
    },
  };
}

function urlOf(server: Server): string {
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `http://${host}:${addr.port}`;
}
