// Store interfaces, one per aggregate. Rows (snake_case) never leave src/store/.

export interface NewInvite {
  medium: string;
  /** Normalised (case-folded) address. */
  address: string;
  roomId: string;
  sender: string;
  token: string;
  /** URL-safe unpadded base64, exactly as returned to the homeserver. */
  ephemeralPublicKey: string;
  /** Every field of the request (extra keys included), for email templates and onbind. */
  fields: Record<string, unknown>;
  createdAt: number;
  expiresAt: number;
}

export interface InviteRecord extends NewInvite {
  id: number;
}

export type MailKind = 'invite' | 'verification';

export interface NewMail {
  kind: MailKind;
  /** The address the message goes to, as the requester wrote it. */
  recipient: string;
  /** What the renderer needs; may hold secrets (the invite's ephemeral private key) until delivery. */
  payload: Record<string, unknown>;
  createdAt: number;
}

export interface InviteStore {
  /** Invite + its ephemeral key + the email to the invitee, in one transaction, or nothing. */
  insertInvite(invite: NewInvite, mail: NewMail): Promise<void>;
  findInviteByToken(token: string): Promise<InviteRecord | undefined>;
  /** True while the key's invitation exists and has not expired. */
  isEphemeralKeyValid(publicKey: string, now: number): Promise<boolean>;
  /** Deletes up to `limit` expired invitations with their keys; returns how many went. */
  deleteExpiredInvites(now: number, limit: number): Promise<number>;
}

export interface Association {
  medium: string;
  address: string;
  mxid: string;
  ts: number;
  notBefore: number;
  notAfter: number;
}

export interface AssociationStore {
  findAssociation(medium: string, address: string, now: number): Promise<Association | undefined>;
  insertAssociation(association: Association): Promise<void>;
}

export interface RateLimitStore {
  /**
   * Counts one hit on each bucket in the fixed window starting at `windowStart` (a bucket last
   * hit in an earlier window starts again at 1) and returns the buckets' counts, in order.
   */
  hitRateLimits(buckets: string[], windowStart: number): Promise<number[]>;
  /** Deletes counters of windows that started before `before`. */
  deleteRateLimitsBefore(before: number): Promise<number>;
}

export interface Store extends InviteStore, AssociationStore, RateLimitStore, SessionStore, BindingStore, OnbindOutboxStore {
  readonly dialect: 'sqlite' | 'mysql';
  close(): Promise<void>;
}

// ---- binding (issue 5): validation sessions, binds, lookups, the onbind outbox ----

export interface ValidationSession {
  /** Opaque session id (CSPRNG). */
  sid: string;
  medium: string;
  /** Normalised (case-folded) address. */
  address: string;
  clientSecret: string;
  token: string;
  sendAttempt: number;
  nextLink: string | null;
  createdAt: number;
  tokenExpiresAt: number;
  validatedAt: number | null;
  expiresAt: number;
}

export interface SessionStore {
  findSession(sid: string): Promise<ValidationSession | undefined>;
  /** The newest unexpired session of this (medium, address, client_secret), for send_attempt idempotence. */
  findSessionByOwner(medium: string, address: string, clientSecret: string, now: number): Promise<ValidationSession | undefined>;
  /** The session and its verification email in one transaction. */
  insertSession(session: ValidationSession, mail: NewMail): Promise<void>;
  /** A new send_attempt: the session's new token/attempt and the email in one transaction. */
  resendSession(sid: string, update: Pick<ValidationSession, 'token' | 'tokenExpiresAt' | 'sendAttempt' | 'nextLink'>, mail: NewMail): Promise<void>;
  markSessionValidated(sid: string, validatedAt: number, expiresAt: number): Promise<void>;
  deleteExpiredSessions(now: number, limit: number): Promise<number>;
}

export interface StoredAssociation extends Association {
  id: number;
}

/** Builds one onbind body for a chunk of claimed invites (fresh objects, signed). */
export type OnbindBodyBuilder = (association: StoredAssociation, invites: InviteRecord[]) => Record<string, unknown>;

export interface BindOptions {
  lookupHash: string;
  /** Server name of the bound mxid: where the onbind calls go. */
  destination: string;
  /** Invites per onbind body (bounds memory and body size). */
  invitesPerCall: number;
  buildBody: OnbindBodyBuilder;
  now: number;
}

export interface BindResult {
  association: StoredAssociation;
  claimedInvites: number;
  onbindRows: number;
}

export interface BindingStore {
  /**
   * One transaction: replace any association of the address, claim the address's pending invites created
   * before now and not claimed before, and write their onbind bodies to the outbox.
   */
  bindAssociation(association: Association, opts: BindOptions): Promise<BindResult>;
  /** Removes the association if it is bound to `mxid`; claimed invites stay claimed. */
  deleteAssociation(medium: string, address: string, mxid: string): Promise<boolean>;
  /** Current associations whose lookup_hash is one of `hashes` (callers batch; one indexed query). */
  findAssociationsByHash(hashes: string[], now: number): Promise<(Association & { lookupHash: string })[]>;
  getBindingSetting(name: string): Promise<string | undefined>;
  putBindingSetting(name: string, value: string): Promise<void>;
  /** Recomputes lookup_hash of every association for a new pepper, in batches; returns how many. */
  rehashAssociations(hash: (address: string, medium: string) => string, batch: number): Promise<number>;
}

export interface OnbindJob {
  id: number;
  destination: string;
  body: string;
  attempts: number;
}

export interface OnbindOutboxStore {
  /** Leases up to `limit` due rows to `worker` until `now + leaseMs` (SKIP LOCKED on MySQL). */
  claimOnbind(worker: string, now: number, leaseMs: number, limit: number): Promise<OnbindJob[]>;
  /** After a 2xx: the row is done and its invites delivered, in one transaction. */
  completeOnbind(id: number, worker: string, now: number, status: number): Promise<void>;
  retryOnbind(id: number, worker: string, nextAttemptAt: number, error: string, status: number | null): Promise<void>;
  /** Permanent failure: stop retrying and keep the reason. */
  failOnbind(id: number, worker: string, now: number, error: string, status: number | null): Promise<void>;
  /** Deletes finished rows older than `before`. */
  deleteFinishedOnbind(before: number, limit: number): Promise<number>;
}
