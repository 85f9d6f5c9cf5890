// The dependencies every handler and worker receives; built once in main.ts (tests build their own).
import type { Config } from './platform/config.js';
import type { KeyRing } from './keys/KeyRing.js';
import type { InviteStore } from './invitations/InviteStore.js';
import type { SessionStore } from './validation/SessionStore.js';
import type { AssociationStore } from './associations/AssociationStore.js';
import type { AccountStore } from './accounts/AccountStore.js';
import type { Authenticator } from './platform/http/security.js';
import type { Logger } from './platform/logger.js';
import type { RandomBytes } from './platform/random.js';
import type { FederationClient } from './federation/types.js';
import type { RateLimiter } from './platform/RateLimiter.js';
import type { Terms } from './accounts/terms.js';
import type { EphemeralKeySource } from './invitations/ephemeralKeys.js';
import type { OutageTracker } from './platform/db/OutageTracker.js';
import type { Metrics } from './platform/metrics.js';

/** Signals from request handlers to background workers, sent after the transaction commits. */
export interface Signals {
  /** A mail-outbox row was committed: wake the mail worker now rather than on its next poll. */
  mailQueued(): void;
  /** An onbind-outbox row was committed: wake the onbind worker now. */
  onbindQueued(): void;
}

export interface Deps {
  config: Config;
  /** Invitations and their ephemeral keys. */
  invites: InviteStore;
  /** Email validation sessions. */
  sessions: SessionStore;
  /** Associations, lookups and the lookup pepper. */
  associations: AssociationStore;
  /** Access tokens and accepted terms. */
  accounts: AccountStore;
  keys: KeyRing;
  /** Fresh ed25519 pairs for store-invite, made ahead on a worker thread unless turned off. */
  ephemeralKeys: EphemeralKeySource;
  auth: Authenticator;
  log: Logger;
  signals: Signals;
  /** Outgoing calls to homeservers (OpenID userinfo, onbind). */
  federation: FederationClient;
  limiter: RateLimiter;
  /** Milliseconds since the epoch; injected so tests can move time. */
  clock: () => number;
  random: RandomBytes;
  /** The current terms of service (empty when no terms file is configured). */
  terms: Terms;
  /** Tells database outages from other failures, and logs each outage once (start and end) rather than per failure. */
  outage: OutageTracker;
  /** The service's Prometheus metrics (counted where things happen; served at /metrics). */
  metrics: Metrics;
  /** When set (tests), every response is checked against the OpenAPI document and mismatches are recorded here. */
  responseViolations?: string[];
  /** When set (tests), told of every answer's operation, status and errcode, to hold the document's errcodes to what is answered. */
  responseSeen?: (operationId: string, status: number, errcode: string | undefined) => void;
}
