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

export interface AccountToken {
  /** sha256 of the access token, hex; the token itself is never stored. */
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
}

export interface AcceptedPolicy {
  policy: string;
  version: string;
}

export interface AccountStore {
  insertAccountToken(token: AccountToken): Promise<void>;
  /** The token's row while it has not expired. */
  findAccountToken(tokenHash: string, now: number): Promise<AccountToken | undefined>;
  /** True when a row was deleted. */
  deleteAccountToken(tokenHash: string): Promise<boolean>;
  /** Deletes up to `limit` expired tokens; returns how many went. */
  deleteExpiredAccountTokens(now: number, limit: number): Promise<number>;
  /** Records accepted policy versions for a user; accepting one again changes nothing. */
  acceptPolicies(userId: string, accepted: AcceptedPolicy[], now: number): Promise<void>;
  acceptedPolicies(userId: string): Promise<AcceptedPolicy[]>;
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


/** A mail-outbox row a worker has claimed (issue 3). */
export interface MailJob {
  id: number;
  kind: MailKind;
  recipient: string;
  payload: Record<string, unknown>;
  /** Including the current one. */
  attempts: number;
  createdAt: number;
}

export type MailOutcome =
  | { id: number; status: 'sent'; at: number; payload: Record<string, unknown> }
  | { id: number; status: 'failed'; at: number; error: string; payload: Record<string, unknown> }
  | { id: number; status: 'retry'; nextAttemptAt: number; error: string };

/**
 * The mail outbox as the delivery worker sees it. Rows are claimed with a lease (locked_by/locked_until);
 * every later write names the worker, so a worker whose lease ran out cannot overwrite another's result.
 */
export interface MailOutboxStore {
  /** Claims up to `limit` due pending rows for `worker` until `now + leaseMs` and counts the attempt. */
  claimDueMail(worker: string, now: number, leaseMs: number, limit: number): Promise<MailJob[]>;
  /**
   * Records what became of claimed rows, all in one transaction: `sent` and `failed` are final (`payload`
   * replaces the stored one, secrets dropped), `retry` releases the row until `nextAttemptAt`. Returns the
   * ids whose lease `worker` had lost (another worker owns them now; nothing was written for those).
   */
  finishMail(worker: string, outcomes: MailOutcome[]): Promise<number[]>;
  /** The earliest next_attempt_at of a pending row (leased rows count at their lease end), if any. */
  nextMailDueAt(): Promise<number | undefined>;
  /** Deletes up to `limit` sent or failed rows finished at or before `before`; returns how many went. */
  deleteFinishedMail(before: number, limit: number): Promise<number>;
}

export interface Store extends InviteStore, AssociationStore, AccountStore, RateLimitStore, MailOutboxStore, SessionStore, BindingStore, OnbindOutboxStore {
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
  /**
   * The mxid of each current association whose lookup_hash is one of `hashes` (callers batch; one indexed
   * query). Only the two columns a lookup answers with are read: a 1,000-address v2 lookup is the heaviest
   * read we serve, and full rows cost it CPU and memory for nothing.
   */
  findMxidsByHash(hashes: string[], now: number): Promise<{ lookupHash: string; mxid: string }[]>;
  getBindingSetting(name: string): Promise<string | undefined>;
  putBindingSetting(name: string, value: string): Promise<void>;
  /** Recomputes lookup_hash of every association for a new pepper, in batches; returns how many. */
  rehashAssociations(hash: (address: string, medium: string) => string, batch: number): Promise<number>;
  /** Writes the setting only if it has no value yet (concurrent first starts agree on one value). */
  insertBindingSettingIfAbsent(name: string, value: string): Promise<void>;
}

export interface OnbindJob {
  id: number;
  destination: string;
  body: string;
  attempts: number;
  /** When the bind queued it: retryable failures give up once it is older than onbind.giveUpAfterMs. */
  createdAt: number;
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
