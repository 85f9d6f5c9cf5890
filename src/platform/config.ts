// Configuration: defaults <- optional YAML/JSON file (--config or TESSERA_CONFIG) <- TESSERA_* environment.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import type { LogLevel } from './logger.js';

export interface Config {
  server: {
    /** The name signatures are made under; homeservers look our keys up by it. */
    name: string;
    /** Absolute URL clients and homeservers reach us at; key_validity_urls and links are built from it. */
    publicBaseUrl: string;
    host: string;
    port: number;
    /** Largest request body accepted, in bytes. */
    bodyLimitBytes: number;
    /** Serve /_matrix/identity/api/v1 (removed from the spec in v1.1, still sent by older homeservers). */
    v1Enabled: boolean;
    /** Behind a reverse proxy: take the client IP from X-Forwarded-For (only then!). */
    trustProxy: boolean;
    /**
     * A request must arrive whole (headers and body) within this long, or it is answered 408 and its
     * connection closed (Node's default is 5 minutes, which lets slow clients hold sockets and memory).
     */
    requestTimeoutMs: number;
  };
  /** SQLite database, signing key and the mail folder live here unless configured elsewhere. */
  dataDir: string;
  database: {
    /** Empty: SQLite at <dataDir>/tessera.sqlite. Else mysql://user:pass@host:3306/db or sqlite:/path. */
    url: string;
    sqliteSynchronous: 'full' | 'normal';
    /** SQLite page cache per connection, MiB (indexes of a large database stay in memory; counts in RSS). */
    sqliteCacheMb: number;
    /** WAL pages after which SQLite checkpoints (in the COMMIT that crosses it); store/db.ts SQLITE_WAL_AUTOCHECKPOINT says why 2,000. */
    sqliteWalAutocheckpoint: number;
    poolMax: number;
    /** MySQL/MariaDB: store-invite group commits in flight at once (KnexStore says why 4). */
    commitConcurrency: number;
  };
  keys: {
    /** Empty: <dataDir>/signing.key, generated on first start. */
    signingKeyFile: string;
    /** The key itself (`ed25519 0 <base64 seed>`), instead of a file. */
    signingKey: string;
    /** Rotated-out keys that /pubkey/isvalid still reports valid. */
    trustedOldKeys: { keyId: string; publicKey: string }[];
  };
  invites: {
    /** Characters of each address part kept in display_name (Sydent default 3; large providers use 1). */
    redactChars: number;
    /** How long an invitation and its ephemeral key stay valid. */
    lifetimeMs: number;
    /** Invitations whose sender is on one of these homeservers are refused. */
    blockedServers: string[];
    /** Invitations into these rooms are refused. */
    blockedRooms: string[];
    /** Invitations whose room name, alias or sender display name contains one of these (case-insensitive) are refused. */
    blockedKeywords: string[];
    /** How often expired invitations are deleted. */
    sweepIntervalMs: number;
  };
  /** Fixed-window limits kept in the database, so all instances share them. 0 switches a limit off. */
  rateLimits: {
    windowMs: number;
    storeInvitePerIp: number;
    storeInvitePerSender: number;
    storeInvitePerAddress: number;
    /** validate/email/requestToken: sessions created or emails re-sent per client IP, and per address (issue 5 review). */
    requestTokenPerIp: number;
    requestTokenPerAddress: number;
  };
  log: { level: LogLevel };
  /** Outgoing calls to homeservers (OpenID userinfo, onbind). */
  federation: {
    /** Verify homeserver TLS certificates. Turn off only in test deployments. */
    verifyTls: boolean;
    /** Host names or CIDR ranges exempt from the outbound deny list (loopback, private, link-local...). */
    allow: string[];
    /** Deadline for one call to a homeserver (discovery excluded), in ms. */
    requestTimeoutMs: number;
    /** Largest homeserver response accepted, in bytes. */
    maxResponseBytes: number;
  };
  /** v2 accounts (/account/register with an OpenID token from the user's homeserver). */
  accounts: {
    /** How long an identity-server access token stays valid after registration. */
    tokenLifetimeMs: number;
    /** When not empty, only users of these homeservers (server names) may register. */
    allowedServers: string[];
  };
  /** Terms of service users must accept before using the v2 API. */
  terms: {
    /** A terms file in Sydent's YAML layout; empty: no terms, no gate. */
    file: string;
  };
  /** Email: SMTP, templates, links, delivery (issue 3). */
  mail: MailConfig;
  /** Issue 6: request-path speed-ups that are switchable because they trade something. */
  performance: {
    /** How long an ephemeral-key validity answer may be reused in memory, ms (0 = never, at most 1000). */
    keyValidityCacheMs: number;
    /**
     * Bulk look-ups (operations marked `x-tessera-bulk` in the document) processed at once; the rest wait
     * in arrival order, once their bodies are read. Bounds memory and keeps latency fair under a burst.
     */
    bulkConcurrency: number;
    /**
     * V8's old-generation growing factor, as a percentage over the live heap (V8's flag
     * --heap-growing-percent); 0 leaves V8's own heuristics. Lower: smaller RSS, more frequent full GCs.
     */
    heapGrowingPercent: number;
    /**
     * Make store-invite's ephemeral key pairs ahead of time on one worker thread during bursts (from 32
     * store-invites within a second until one to two minutes under that rate; off: always on the request
     * path). Takes ~31 us per invitation off the event loop for ~9 MiB of RSS while it runs
     * (src/keys/ephemeralKeys.ts).
     */
    keyWorker: boolean;
  };
  /** Validation sessions, associations and lookups (issue 5). */
  binding: {
    /** How long a validation session lives: from creation until validated, then from validation until bound. */
    sessionLifetimeMs: number;
    /** How long the emailed token can be submitted. */
    tokenLifetimeMs: number;
    /** not_after - not_before of a signed association. */
    associationLifetimeMs: number;
    /** v2 lookup pepper. Empty: generated once and kept in the database. Change it to rotate. */
    lookupPepper: string;
  };
  /** Delivery of onbind callbacks to invitees' homeservers (issue 5). */
  onbind: {
    /** Invites per onbind call; a bind with more pending invites makes several calls. */
    invitesPerCall: number;
    /** First retry delay; doubles per attempt up to maxBackoffMs, with +-25% jitter. */
    initialBackoffMs: number;
    maxBackoffMs: number;
    /** How long a worker holds a claimed delivery before another may take it. */
    leaseMs: number;
    /** Polling interval besides being woken after each bind. */
    pollIntervalMs: number;
    /** Deliveries in flight at once per process. */
    concurrency: number;
    /** Finished (delivered or failed) outbox rows are deleted after this long. */
    keepFinishedMs: number;
    /** Retryable failures (5xx, 429, DNS, timeouts) are given up this long after the bind. 0: invites.lifetimeMs. */
    giveUpAfterMs: number;
  };
}

export interface MailConfig {
  /** From header and envelope sender; required when smtp.host is set. Default: Tessera <noreply@host of publicBaseUrl>. */
  from: string;
  smtp: {
    /** Empty: no SMTP; every message is written as an .eml file under <dataDir>/mail/. */
    host: string;
    port: number;
    /** none: plain; starttls: upgrade required; tls: TLS from the first byte (usually port 465). */
    tls: 'none' | 'starttls' | 'tls';
    /** Verify the server's certificate (starttls/tls). Turn off only for a trusted local relay. */
    verifyCertificates: boolean;
    /** Empty: no authentication. */
    user: string;
    password: string;
    /** SMTP connections kept open to the relay at most (each sends one message at a time). */
    maxConnections: number;
  };
  /** Sydent-layout templates: one folder per brand with invite_template.eml.j2, verification_template.eml.j2, verify_response_template.html. Empty: built-in English templates. */
  templatesDir: string;
  /** Brand folder used when the request names none (or one that does not exist). */
  brand: string;
  /** Web client the invite link points into. */
  webClientUrl: string;
  /** Hosts (host or host:port) whose https URLs a request's org.matrix.web_client_location may name. */
  webClientAllowedHosts: string[];
  /** Sydent-style subjects; %(field)s is replaced by the (truncated) value. */
  inviteSubject: string;
  inviteSubjectSpace: string;
  verificationSubject: string;
  /** Right-hand side of Message-IDs. Default: host of publicBaseUrl. */
  messageIdDomain: string;
  /** Retry backoff: first delay, cap, and the age after which an undeliverable email is given up. */
  retryBaseMs: number;
  retryMaxMs: number;
  giveUpAfterMs: number;
  /** Safety-net poll; new mail wakes the worker at once. */
  pollIntervalMs: number;
  /** How long a claimed row stays reserved for one worker. */
  leaseMs: number;
  /** Rows claimed per database round trip, and sent in parallel. */
  batchSize: number;
  /** Sent and failed rows are deleted after this long. */
  retentionMs: number;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigInput = DeepPartial<Config>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const DAY = 24 * 3600 * 1000;

export function defaults(): Config {
  return {
    server: { name: '', publicBaseUrl: '', host: '127.0.0.1', port: 8090, bodyLimitBytes: 256 * 1024, v1Enabled: true, trustProxy: false, requestTimeoutMs: 30_000 },
    dataDir: './data',
    database: { url: '', sqliteSynchronous: 'full', sqliteCacheMb: 4, sqliteWalAutocheckpoint: 2_000, poolMax: 8, commitConcurrency: 4 },
    keys: { signingKeyFile: '', signingKey: '', trustedOldKeys: [] },
    invites: { redactChars: 3, lifetimeMs: 90 * DAY, blockedServers: [], blockedRooms: [], blockedKeywords: [], sweepIntervalMs: 3600 * 1000 },
    // A homeserver sends every user's invites from one IP, hence the generous per-IP figure.
    rateLimits: { windowMs: 60_000, storeInvitePerIp: 1200, storeInvitePerSender: 60, storeInvitePerAddress: 10, requestTokenPerIp: 60, requestTokenPerAddress: 5 },
    log: { level: 'info' },
    performance: { keyValidityCacheMs: 1000, bulkConcurrency: 2, heapGrowingPercent: 20, keyWorker: true },
    binding: { sessionLifetimeMs: DAY, tokenLifetimeMs: DAY, associationLifetimeMs: 100 * 365 * DAY, lookupPepper: '' },
    onbind: { invitesPerCall: 100, initialBackoffMs: 5000, maxBackoffMs: 3600 * 1000, leaseMs: 60_000, pollIntervalMs: 30_000, concurrency: 4, keepFinishedMs: 7 * DAY, giveUpAfterMs: 0 },
    federation: { verifyTls: true, allow: [], requestTimeoutMs: 10_000, maxResponseBytes: 1024 * 1024 },
    accounts: { tokenLifetimeMs: 30 * DAY, allowedServers: [] },
    terms: { file: '' },
    mail: {
      from: '',
      smtp: { host: '', port: 25, tls: 'starttls', verifyCertificates: true, user: '', password: '', maxConnections: 8 },
      templatesDir: '',
      brand: 'matrix-org',
      webClientUrl: 'https://app.element.io',
      webClientAllowedHosts: [],
      inviteSubject: '%(sender_display_name)s has invited you to chat',
      inviteSubjectSpace: '%(sender_display_name)s has invited you to a space',
      verificationSubject: 'Confirm your email address for Matrix',
      messageIdDomain: '',
      retryBaseMs: 5000,
      retryMaxMs: 3600 * 1000,
      giveUpAfterMs: 3 * DAY,
      pollIntervalMs: 30_000,
      leaseMs: 5 * 60_000,
      batchSize: 100,
      retentionMs: 7 * DAY,
    },
  };
}

type EnvKind = 'string' | 'int' | 'bool' | 'list';
/** Environment variable -> config path. Operators and test harnesses drive Tessera with these. */
export const ENV_VARS: [string, string, EnvKind][] = [
  ['TESSERA_SERVER_NAME', 'server.name', 'string'],
  ['TESSERA_PUBLIC_BASE_URL', 'server.publicBaseUrl', 'string'],
  ['TESSERA_HOST', 'server.host', 'string'],
  ['TESSERA_PORT', 'server.port', 'int'],
  ['TESSERA_BODY_LIMIT_BYTES', 'server.bodyLimitBytes', 'int'],
  ['TESSERA_V1_ENABLED', 'server.v1Enabled', 'bool'],
  ['TESSERA_DATA_DIR', 'dataDir', 'string'],
  ['TESSERA_DB_URL', 'database.url', 'string'],
  ['TESSERA_SQLITE_SYNCHRONOUS', 'database.sqliteSynchronous', 'string'],
  ['TESSERA_SQLITE_CACHE_MB', 'database.sqliteCacheMb', 'int'],
  ['TESSERA_SQLITE_WAL_AUTOCHECKPOINT', 'database.sqliteWalAutocheckpoint', 'int'],
  ['TESSERA_DB_POOL_MAX', 'database.poolMax', 'int'],
  ['TESSERA_DB_COMMIT_CONCURRENCY', 'database.commitConcurrency', 'int'],
  ['TESSERA_SIGNING_KEY_FILE', 'keys.signingKeyFile', 'string'],
  ['TESSERA_SIGNING_KEY', 'keys.signingKey', 'string'],
  ['TESSERA_REDACT_CHARS', 'invites.redactChars', 'int'],
  ['TESSERA_INVITE_LIFETIME_MS', 'invites.lifetimeMs', 'int'],
  ['TESSERA_TRUST_PROXY', 'server.trustProxy', 'bool'],
  ['TESSERA_REQUEST_TIMEOUT_MS', 'server.requestTimeoutMs', 'int'],
  ['TESSERA_RATELIMIT_WINDOW_MS', 'rateLimits.windowMs', 'int'],
  ['TESSERA_RATELIMIT_INVITES_PER_IP', 'rateLimits.storeInvitePerIp', 'int'],
  ['TESSERA_RATELIMIT_INVITES_PER_SENDER', 'rateLimits.storeInvitePerSender', 'int'],
  ['TESSERA_RATELIMIT_INVITES_PER_ADDRESS', 'rateLimits.storeInvitePerAddress', 'int'],
  ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_IP', 'rateLimits.requestTokenPerIp', 'int'],
  ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_ADDRESS', 'rateLimits.requestTokenPerAddress', 'int'],
  ['TESSERA_LOG_LEVEL', 'log.level', 'string'],
  ['TESSERA_KEY_VALIDITY_CACHE_MS', 'performance.keyValidityCacheMs', 'int'],
  ['TESSERA_BULK_CONCURRENCY', 'performance.bulkConcurrency', 'int'],
  ['TESSERA_HEAP_GROWING_PERCENT', 'performance.heapGrowingPercent', 'int'],
  ['TESSERA_KEY_WORKER', 'performance.keyWorker', 'bool'],
  ['TESSERA_SESSION_LIFETIME_MS', 'binding.sessionLifetimeMs', 'int'],
  ['TESSERA_VALIDATION_TOKEN_LIFETIME_MS', 'binding.tokenLifetimeMs', 'int'],
  ['TESSERA_ASSOCIATION_LIFETIME_MS', 'binding.associationLifetimeMs', 'int'],
  ['TESSERA_LOOKUP_PEPPER', 'binding.lookupPepper', 'string'],
  ['TESSERA_ONBIND_INVITES_PER_CALL', 'onbind.invitesPerCall', 'int'],
  ['TESSERA_ONBIND_INITIAL_BACKOFF_MS', 'onbind.initialBackoffMs', 'int'],
  ['TESSERA_ONBIND_MAX_BACKOFF_MS', 'onbind.maxBackoffMs', 'int'],
  ['TESSERA_ONBIND_LEASE_MS', 'onbind.leaseMs', 'int'],
  ['TESSERA_ONBIND_POLL_INTERVAL_MS', 'onbind.pollIntervalMs', 'int'],
  ['TESSERA_ONBIND_CONCURRENCY', 'onbind.concurrency', 'int'],
  ['TESSERA_ONBIND_GIVE_UP_AFTER_MS', 'onbind.giveUpAfterMs', 'int'],
  ['TESSERA_FEDERATION_VERIFY_TLS', 'federation.verifyTls', 'bool'],
  ['TESSERA_FEDERATION_ALLOW', 'federation.allow', 'list'],
  ['TESSERA_FEDERATION_TIMEOUT_MS', 'federation.requestTimeoutMs', 'int'],
  ['TESSERA_ACCOUNT_TOKEN_LIFETIME_MS', 'accounts.tokenLifetimeMs', 'int'],
  ['TESSERA_ACCOUNT_ALLOWED_SERVERS', 'accounts.allowedServers', 'list'],
  ['TESSERA_TERMS_FILE', 'terms.file', 'string'],
  ['TESSERA_SMTP_HOST', 'mail.smtp.host', 'string'],
  ['TESSERA_SMTP_PORT', 'mail.smtp.port', 'int'],
  ['TESSERA_SMTP_TLS', 'mail.smtp.tls', 'string'],
  ['TESSERA_SMTP_VERIFY_CERTIFICATES', 'mail.smtp.verifyCertificates', 'bool'],
  ['TESSERA_SMTP_MAX_CONNECTIONS', 'mail.smtp.maxConnections', 'int'],
  ['TESSERA_SMTP_USER', 'mail.smtp.user', 'string'],
  ['TESSERA_SMTP_PASSWORD', 'mail.smtp.password', 'string'],
  ['TESSERA_MAIL_FROM', 'mail.from', 'string'],
  ['TESSERA_TEMPLATES_DIR', 'mail.templatesDir', 'string'],
  ['TESSERA_BRAND', 'mail.brand', 'string'],
  ['TESSERA_WEB_CLIENT_URL', 'mail.webClientUrl', 'string'],
  ['TESSERA_WEB_CLIENT_ALLOWED_HOSTS', 'mail.webClientAllowedHosts', 'list'],
  ['TESSERA_MAIL_RETENTION_MS', 'mail.retentionMs', 'int'],
];

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]*$' },
        publicBaseUrl: { type: 'string', pattern: '^(https?://[^/?#]+/?)?$' },
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        bodyLimitBytes: { type: 'integer', minimum: 1024 },
        v1Enabled: { type: 'boolean' },
        trustProxy: { type: 'boolean' },
        requestTimeoutMs: { type: 'integer', minimum: 1000 },
      },
    },
    dataDir: { type: 'string', minLength: 1 },
    database: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^($|(mysql|mariadb)://|sqlite:|[^:]*$)' },
        sqliteSynchronous: { enum: ['full', 'normal'] },
        sqliteCacheMb: { type: 'integer', minimum: 1, maximum: 4096 },
        // Not 0 (no automatic checkpoint: the WAL would grow without bound); at most ~400 MiB of WAL.
        sqliteWalAutocheckpoint: { type: 'integer', minimum: 100, maximum: 100_000 },
        poolMax: { type: 'integer', minimum: 1, maximum: 256 },
        commitConcurrency: { type: 'integer', minimum: 1, maximum: 16 },
      },
    },
    keys: {
      type: 'object',
      additionalProperties: false,
      properties: {
        signingKeyFile: { type: 'string' },
        signingKey: { type: 'string' },
        trustedOldKeys: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['keyId', 'publicKey'],
            properties: { keyId: { type: 'string', pattern: '^ed25519:[A-Za-z0-9_]+$' }, publicKey: { type: 'string', minLength: 43 } },
          },
        },
      },
    },
    invites: {
      type: 'object',
      additionalProperties: false,
      properties: {
        redactChars: { type: 'integer', minimum: 1, maximum: 64 },
        lifetimeMs: { type: 'integer', minimum: 60_000 },
        blockedServers: { type: 'array', items: { type: 'string' } },
        blockedRooms: { type: 'array', items: { type: 'string' } },
        blockedKeywords: { type: 'array', items: { type: 'string', minLength: 1 } },
        sweepIntervalMs: { type: 'integer', minimum: 1000 },
      },
    },
    rateLimits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        windowMs: { type: 'integer', minimum: 1000 },
        storeInvitePerIp: { type: 'integer', minimum: 0 },
        storeInvitePerSender: { type: 'integer', minimum: 0 },
        storeInvitePerAddress: { type: 'integer', minimum: 0 },
        requestTokenPerIp: { type: 'integer', minimum: 0 },
        requestTokenPerAddress: { type: 'integer', minimum: 0 },
      },
    },
    log: { type: 'object', additionalProperties: false, properties: { level: { enum: ['debug', 'info', 'warn', 'error', 'silent'] } } },
    performance: {
      type: 'object',
      additionalProperties: false,
      properties: {
        keyValidityCacheMs: { type: 'integer', minimum: 0, maximum: 1000 },
        bulkConcurrency: { type: 'integer', minimum: 1, maximum: 1000 },
        heapGrowingPercent: { type: 'integer', minimum: 0, maximum: 1000 },
        keyWorker: { type: 'boolean' },
      },
    },
    binding: {
      type: 'object',
      additionalProperties: false,
      properties: {
        sessionLifetimeMs: { type: 'integer', minimum: 1000 },
        tokenLifetimeMs: { type: 'integer', minimum: 1000 },
        associationLifetimeMs: { type: 'integer', minimum: 60_000 },
        lookupPepper: { type: 'string', pattern: '^[A-Za-z0-9._~-]*$', maxLength: 255 },
      },
    },
    onbind: {
      type: 'object',
      additionalProperties: false,
      properties: {
        invitesPerCall: { type: 'integer', minimum: 1, maximum: 1000 },
        initialBackoffMs: { type: 'integer', minimum: 1 },
        maxBackoffMs: { type: 'integer', minimum: 1 },
        leaseMs: { type: 'integer', minimum: 100 },
        pollIntervalMs: { type: 'integer', minimum: 10 },
        concurrency: { type: 'integer', minimum: 1, maximum: 64 },
        keepFinishedMs: { type: 'integer', minimum: 0 },
        giveUpAfterMs: { type: 'integer', minimum: 0 },
      },
    },
    federation: {
      type: 'object',
      additionalProperties: false,
      properties: {
        verifyTls: { type: 'boolean' },
        // a host name, or an IPv4/IPv6 address with an optional /prefix
        allow: { type: 'array', items: { type: 'string', pattern: '^([A-Za-z0-9.-]+|[0-9.]+(/\\d{1,2})?|[0-9A-Fa-f:.]+(/\\d{1,3})?)$' } },
        requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 300_000 },
        maxResponseBytes: { type: 'integer', minimum: 1024 },
      },
    },
    accounts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        tokenLifetimeMs: { type: 'integer', minimum: 60_000 },
        allowedServers: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]+$' } },
      },
    },
    terms: { type: 'object', additionalProperties: false, properties: { file: { type: 'string' } } },
    mail: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // No control characters: the value goes into a header as is.
        from: { type: 'string', pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
        smtp: {
          type: 'object',
          additionalProperties: false,
          properties: {
            host: { type: 'string' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            tls: { enum: ['none', 'starttls', 'tls'] },
            verifyCertificates: { type: 'boolean' },
            user: { type: 'string' },
            password: { type: 'string' },
            maxConnections: { type: 'integer', minimum: 1, maximum: 100 },
          },
        },
        templatesDir: { type: 'string' },
        brand: { type: 'string', pattern: '^([A-Za-z0-9_-][A-Za-z0-9._-]*)?$' },
        webClientUrl: { type: 'string', pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$' },
        webClientAllowedHosts: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]+$' } },
        inviteSubject: { type: 'string', pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
        inviteSubjectSpace: { type: 'string', pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
        verificationSubject: { type: 'string', pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
        messageIdDomain: { type: 'string', pattern: '^[A-Za-z0-9.-]*$' },
        retryBaseMs: { type: 'integer', minimum: 1 },
        retryMaxMs: { type: 'integer', minimum: 1 },
        giveUpAfterMs: { type: 'integer', minimum: 1000 },
        pollIntervalMs: { type: 'integer', minimum: 10 },
        leaseMs: { type: 'integer', minimum: 1000 },
        batchSize: { type: 'integer', minimum: 1, maximum: 500 },
        retentionMs: { type: 'integer', minimum: 0 },
      },
    },
  },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = target;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function fromEnv(env: NodeJS.ProcessEnv, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, path, kind] of ENV_VARS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (kind === 'int') {
      value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (Number.isNaN(value)) problems.push(`${name} must be an integer, got ${JSON.stringify(raw)}`);
    } else if (kind === 'bool') {
      const v = raw.trim().toLowerCase();
      value = ['1', 'true', 'yes', 'on'].includes(v) ? true : ['0', 'false', 'no', 'off'].includes(v) ? false : undefined;
      if (value === undefined) problems.push(`${name} must be true or false, got ${JSON.stringify(raw)}`);
    } else if (kind === 'list') {
      value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    }
    if (value !== undefined && !Number.isNaN(value)) setPath(out, path, value);
  }
  return out;
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Applied last; tests use it. */
  overrides?: ConfigInput;
}

/** Builds the effective configuration, or throws ConfigError listing every problem at once. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const argv = opts.argv ?? process.argv.slice(2);
  const problems: string[] = [];
  let fileConfig: Record<string, unknown> = {};
  const flag = argv.indexOf('--config');
  const file = flag >= 0 ? argv[flag + 1] : env.TESSERA_CONFIG;
  if (file) {
    try {
      const parsed = parseYaml(readFileSync(file, 'utf8')) as unknown;
      if (parsed !== null && !isObject(parsed)) problems.push(`${file}: the config file must hold a mapping`);
      else fileConfig = parsed ?? {};
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  let merged = merge(defaults() as unknown as Record<string, unknown>, fileConfig);
  merged = merge(merged, fromEnv(env, problems));
  merged = merge(merged, (opts.overrides ?? {}) as Record<string, unknown>);
  const validate = new Ajv({ allErrors: true }).compile(SCHEMA);
  if (!validate(merged)) {
    for (const e of validate.errors ?? []) {
      const where = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
      const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : '';
      problems.push(`${where}: ${e.message ?? 'invalid'}${extra}`);
    }
  }
  problems.push(...mailProblems(merged));
  if (problems.length > 0) throw new ConfigError(problems);
  return finish(merged as unknown as Config);
}

/** Cross-field mail rules the schema cannot say (issue 3). */
function mailProblems(merged: Record<string, unknown>): string[] {
  const mail = merged.mail as Partial<MailConfig> | undefined;
  if (!mail?.from) return mail?.smtp?.host ? ['mail.from: a From address is required when mail.smtp.host is set (TESSERA_MAIL_FROM)'] : [];
  const plain = /^[^<>@\s]+@[^<>@\s]+$/;
  const named = /^[^<>]*<[^<>@\s]+@[^<>@\s]+>$/;
  return plain.test(mail.from.trim()) || named.test(mail.from.trim()) ? [] : ['mail.from: must be an address or "Name <address>"'];
}

/** Fills in the settings derived from others. */
function finish(c: Config): Config {
  const dataDir = resolve(c.dataDir);
  const host = c.server.host === '0.0.0.0' || c.server.host === '::' ? '127.0.0.1' : c.server.host;
  const publicBaseUrl = (c.server.publicBaseUrl || `http://${host.includes(':') ? `[${host}]` : host}:${c.server.port}`).replace(/\/+$/, '');
  return {
    ...c,
    dataDir,
    server: { ...c.server, publicBaseUrl, name: c.server.name || new URL(publicBaseUrl).host },
    database: { ...c.database, url: c.database.url || join(dataDir, 'tessera.sqlite') },
    keys: { ...c.keys, signingKeyFile: c.keys.signingKeyFile || join(dataDir, 'signing.key') },
    mail: finishMail(c.mail, new URL(publicBaseUrl).hostname),
    // An onbind is useless once its invites have expired: by default give up retrying then.
    onbind: { ...c.onbind, giveUpAfterMs: c.onbind.giveUpAfterMs || c.invites.lifetimeMs },
  };
}

function finishMail(m: MailConfig, publicHost: string): MailConfig {
  const domain = m.messageIdDomain || publicHost.replace(/^\[|\]$/g, '').replace(/[^A-Za-z0-9.-]/g, '-');
  return {
    ...m,
    from: m.from || `Tessera <noreply@${publicHost.includes('.') ? publicHost : `${publicHost}.invalid`}>`,
    templatesDir: m.templatesDir ? resolve(m.templatesDir) : '',
    webClientUrl: m.webClientUrl.replace(/\/+$/, ''),
    webClientAllowedHosts: m.webClientAllowedHosts.map((h) => h.toLowerCase()),
    messageIdDomain: domain,
  };
}
