// The configuration schema: every key once, with its type, limits, default and description. The Config type, the
// defaults, validation, environment variable names and docs/configuration.md are all derived from it.
//
// Adding a key: add it here (and to docs/tessera.example.yaml), then run `npm run config:docs`. Its environment
// variable is TESSERA_ + its path in UPPER_SNAKE_CASE; give `aliases` only to keep a name already in use working.
import { Type, type Static, type TProperties } from '@sinclair/typebox';
import type { LogFormat, LogLevel } from '../logger.js';

/** What every key carries besides its JSON Schema limits. */
interface Meta {
  description: string;
  /** Other environment variable names that also set this key (older names still accepted). */
  aliases?: string[];
  /** When the default is filled in from other keys, how (shown as the default in the reference). */
  derived?: string;
  /** The key's former path, still accepted in files and overrides (the two outboxes' settings share one set of names). */
  formerly?: string;
}
type Limits = { minimum?: number; maximum?: number; pattern?: string; minLength?: number; maxLength?: number };

const DAY = 24 * 3600 * 1000;

/** JSON Schema keywords of ours; ajv is told about them (platform/config.ts) so that its strict mode accepts them. */
export const ANNOTATIONS = ['aliases', 'derived', 'unit', 'formerly'] as const;

const Str = (dflt: string, meta: Meta & Limits) => Type.String({ default: dflt, ...meta });
const Int = (dflt: number, meta: Meta & Limits) => Type.Integer({ default: dflt, ...meta });
const Bool = (dflt: boolean, meta: Meta) => Type.Boolean({ default: dflt, ...meta });
/** A whole number of milliseconds; in the file and the environment also `500ms`, `30s`, `10m`, `3h`, `3d`. */
const Ms = (dflt: number, meta: Meta & Limits) => Type.Integer({ default: dflt, unit: 'ms', ...meta });
const OneOf = <const T extends readonly string[]>(values: T, dflt: T[number], meta: Meta) =>
  Type.Unsafe<T[number]>(Type.String({ enum: [...values], default: dflt, ...meta }));
const List = (meta: Meta, item: Limits = {}) => Type.Array(Type.String(item), { default: [], ...meta });
const Section = <T extends TProperties>(description: string, properties: T) =>
  Type.Object(properties, { additionalProperties: false, description });

// Server names (host, IPv4, [IPv6], optional :port) and hosts in allow lists.
const SERVER_NAME = '^[A-Za-z0-9.:\\[\\]-]+$';
// No control characters: these values go into mail headers as they are.
const HEADER_SAFE = '^[^\\u0000-\\u001f\\u007f]*$';

const mail = Section(
  'Email: invitations and address verification. Without smtp.host every message is written as a complete .eml file under <dataDir>/mail/ (mode 0600) and its path is logged.',
  {
    from: Str('', {
      description: 'From header and envelope sender: an address or "Name <address>". Required when smtp.host is set.',
      derived: 'Tessera <noreply@host of server.publicBaseUrl> (a host without a dot gets .invalid appended)',
      pattern: HEADER_SAFE,
    }),
    smtp: Section('The SMTP relay mail is sent through.', {
      host: Str('', {
        description: 'Empty: no SMTP; every message is written as an .eml file under <dataDir>/mail/.',
        aliases: ['TESSERA_SMTP_HOST'],
      }),
      port: Int(25, { description: 'SMTP port.', minimum: 1, maximum: 65535, aliases: ['TESSERA_SMTP_PORT'] }),
      tls: OneOf(['none', 'starttls', 'tls'], 'starttls', {
        description: 'none: plain text; starttls: upgrade, required (ports 587 and 25); tls: TLS from the first byte (usually port 465).',
        aliases: ['TESSERA_SMTP_TLS'],
      }),
      verifyCertificates: Bool(true, {
        description: "Verify the server's certificate (starttls, tls). Turn off only for a relay you trust on a private network.",
        aliases: ['TESSERA_SMTP_VERIFY_CERTIFICATES'],
      }),
      user: Str('', { description: 'Empty: no authentication.', aliases: ['TESSERA_SMTP_USER'] }),
      password: Str('', { description: 'SMTP password.', aliases: ['TESSERA_SMTP_PASSWORD'] }),
      maxConnections: Int(8, {
        description:
          'Connections kept open to the relay at most. Each sends one message at a time, so this bounds how many emails are in flight.',
        minimum: 1,
        maximum: 100,
        aliases: ['TESSERA_SMTP_MAX_CONNECTIONS'],
      }),
    }),
    templatesDir: Str('', {
      description:
        'A Sydent-layout templates folder: one folder per brand holding invite_template.eml.j2, verification_template.eml.j2 and verify_response_template.html (Jinja syntax, rendered with nunjucks, autoescape on). Empty: the built-in English templates. Relative paths are taken from the working directory.',
      aliases: ['TESSERA_TEMPLATES_DIR'],
    }),
    brand: Str('matrix-org', {
      description: "Brand folder used unless a request's ?brand= names another existing folder.",
      pattern: '^([A-Za-z0-9_-][A-Za-z0-9._-]*)?$',
      aliases: ['TESSERA_BRAND'],
    }),
    webClientUrl: Str('https://app.element.io', {
      description: 'Web client the invitation link opens (http or https; a trailing / is dropped).',
      pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$',
      aliases: ['TESSERA_WEB_CLIENT_URL'],
    }),
    webClientAllowedHosts: List(
      {
        description:
          "Hosts (host or host:port, any letter case) whose https URLs a request's org.matrix.web_client_location may name. Empty: the request's value is always ignored.",
        aliases: ['TESSERA_WEB_CLIENT_ALLOWED_HOSTS'],
      },
      { pattern: SERVER_NAME },
    ),
    inviteSubject: Str('%(sender_display_name)s has invited you to chat', {
      description: "Subject of invitation emails, Sydent style: %(field)s is replaced by the request's (truncated) value.",
      pattern: HEADER_SAFE,
    }),
    inviteSubjectSpace: Str('%(sender_display_name)s has invited you to a space', {
      description: 'Subject of invitations into a space.',
      pattern: HEADER_SAFE,
    }),
    verificationSubject: Str('Confirm your email address for Matrix', {
      description: 'Subject of address verification emails.',
      pattern: HEADER_SAFE,
    }),
    messageIdDomain: Str('', {
      description: 'Right-hand side of Message-IDs, and the name given in SMTP EHLO.',
      derived: 'host of server.publicBaseUrl',
      pattern: '^[A-Za-z0-9.-]*$',
    }),
    initialBackoffMs: Ms(5000, {
      description: 'First retry delay of an undelivered email; doubles per attempt up to maxBackoffMs, with jitter.',
      minimum: 1,
      formerly: 'mail.retryBaseMs',
    }),
    maxBackoffMs: Ms(3600 * 1000, { description: 'Longest retry delay.', minimum: 1, formerly: 'mail.retryMaxMs' }),
    giveUpAfterMs: Ms(3 * DAY, {
      description: 'An email still undelivered this long after it was queued is marked failed.',
      minimum: 1000,
    }),
    pollIntervalMs: Ms(30_000, {
      description: "New mail wakes the worker at once; this poll only catches other instances' work and expired leases.",
      minimum: 10,
    }),
    leaseMs: Ms(15_000, {
      description:
        'How long a claimed email stays reserved for one worker unless renewed; after a crash its emails are picked up this long after the last renewal.',
      minimum: 1000,
    }),
    leaseRenewMs: Ms(0, {
      description:
        'How often a worker renews the leases of the emails it holds (sending or waiting for a connection); less than leaseMs. 0: a third of leaseMs.',
      derived: 'a third of mail.leaseMs (when 0)',
      minimum: 0,
    }),
    concurrency: Int(100, {
      description:
        'Emails a worker holds at once: claimed, sent in parallel over up to smtp.maxConnections connections, each recorded as sent as its send completes. A crash re-sends at most the sends that had completed and were not yet recorded.',
      minimum: 1,
      maximum: 500,
      formerly: 'mail.batchSize',
    }),
    keepFinishedMs: Ms(7 * DAY, {
      description: 'Sent and failed emails are deleted from the outbox after this long, and so are the .eml files written without SMTP.',
      minimum: 0,
      aliases: ['TESSERA_MAIL_RETENTION_MS'],
      formerly: 'mail.retentionMs',
    }),
  },
);

export const ConfigSchema = Section('Tessera configuration.', {
  server: Section('The HTTP listener and the name Tessera signs under.', {
    name: Str('', {
      description: 'The name signatures are made under; homeservers look our keys up by it.',
      derived: 'host[:port] of server.publicBaseUrl',
      pattern: '^[A-Za-z0-9.:\\[\\]-]*$',
    }),
    publicBaseUrl: Str('', {
      description:
        'Absolute http(s) URL clients and homeservers reach us at; key_validity_url and email links are built from it. A trailing / is dropped.',
      derived: 'http://<server.host>:<server.port> (127.0.0.1 when host is 0.0.0.0 or ::)',
      pattern: '^(https?://[^/?#]+/?)?$',
      aliases: ['TESSERA_PUBLIC_BASE_URL'],
    }),
    host: Str('127.0.0.1', { description: 'Address to listen on.', minLength: 1, aliases: ['TESSERA_HOST'] }),
    port: Int(8090, { description: 'Port to listen on (0: any free port).', minimum: 0, maximum: 65535, aliases: ['TESSERA_PORT'] }),
    bodyLimitBytes: Int(256 * 1024, {
      description:
        'Largest request body accepted, in bytes; larger ones get 413 M_TOO_LARGE. The default holds a v2 lookup of several thousand hashes.',
      minimum: 1024,
      aliases: ['TESSERA_BODY_LIMIT_BYTES'],
    }),
    v1Enabled: Bool(true, {
      description:
        'Serve /_matrix/identity/api/v1, removed from the spec in v1.1 but still used by older homeservers. Off: those paths answer 404 M_UNRECOGNIZED.',
      aliases: ['TESSERA_V1_ENABLED'],
    }),
    trustProxy: Bool(false, {
      description:
        'Behind a reverse proxy: take the client IP from X-Forwarded-For. Turn on only when the proxy sets it; otherwise clients could pick their own rate-limit bucket.',
      aliases: ['TESSERA_TRUST_PROXY'],
    }),
    requestTimeoutMs: Ms(30_000, {
      description:
        "A request must arrive whole (headers and body) within this long, or it is answered 408 and its connection closed. Node's own default (5 minutes) lets slow clients hold sockets and memory.",
      minimum: 1000,
      aliases: ['TESSERA_REQUEST_TIMEOUT_MS'],
    }),
  }),
  docs: Section('The contract documents and their API reference page, served outside /_matrix.', {
    enabled: Bool(true, {
      description:
        'Serve /openapi/identity.yaml and .json, /openapi/homeserver.yaml and .json, and the API reference page at /docs/. Off: those paths answer 404 M_UNRECOGNIZED.',
    }),
  }),
  metrics: Section('Prometheus metrics at GET /metrics, outside /_matrix (docs/operations.md lists them).', {
    enabled: Bool(true, { description: 'Serve /metrics. Off: /metrics answers 404 M_UNRECOGNIZED and no metrics listener is opened.' }),
    host: Str('', {
      description: 'Address the metrics listener binds to (only with metrics.port).',
      derived: 'server.host',
    }),
    port: Int(0, {
      description:
        'A port of its own for /metrics, so that it can be kept off the public listener: then /metrics is served only there (the main listener answers it 404). 0: /metrics is served on the main listener.',
      minimum: 0,
      maximum: 65535,
    }),
  }),
  dataDir: Str('./data', {
    description:
      'Holds the SQLite database, the signing key and the mail folder unless configured elsewhere. Relative paths are taken from the working directory.',
    minLength: 1,
  }),
  database: Section('Where data is kept: SQLite (embedded) or MySQL/MariaDB (production).', {
    url: Str('', {
      description:
        'mysql://user:pass@host:3306/db (MySQL or MariaDB; create the database with utf8mb4), mariadb://..., sqlite:/path or a file path.',
      derived: 'SQLite at <dataDir>/tessera.sqlite',
      pattern: '^($|(mysql|mariadb)://|sqlite:|[^:]*$)',
      aliases: ['TESSERA_DB_URL'],
    }),
    sqliteSynchronous: OneOf(['full', 'normal'], 'full', {
      description:
        'SQLite durability. full: nothing is acknowledged before it would survive power loss (the WAL is flushed in a background thread before each commit is reported). normal: no flush per commit; may lose the last commits on power loss, never on a crash, and never corrupts the database.',
      aliases: ['TESSERA_SQLITE_SYNCHRONOUS'],
    }),
    sqliteCacheMb: Int(4, {
      description:
        "SQLite page cache per connection, MiB. A larger cache keeps a large database's indexes in memory, which saves CPU per write; it counts in the process's memory.",
      minimum: 1,
      maximum: 4096,
      aliases: ['TESSERA_SQLITE_CACHE_MB'],
    }),
    // Not 0 (no automatic checkpoint: the WAL would grow without bound); the maximum is about 400 MiB of WAL.
    sqliteWalAutocheckpoint: Int(2000, {
      description:
        'SQLite copies the WAL back into the database file (a checkpoint, in the commit that crosses it) every this many 4 KiB pages. Fewer: a smaller tessera.sqlite-wal file and shorter checkpoints, at more CPU per write. The default is explained at SQLITE_WAL_AUTOCHECKPOINT in src/platform/db/db.ts.',
      minimum: 100,
      maximum: 100_000,
      aliases: ['TESSERA_SQLITE_WAL_AUTOCHECKPOINT'],
    }),
    sqliteBusyTimeoutMs: Ms(5000, {
      description:
        'SQLite: how long a write waits for a lock another process holds (a backup, the sqlite3 shell) before its request answers 503. The event loop stands still while it waits.',
      minimum: 0,
      maximum: 60_000,
    }),
    poolMax: Int(8, { description: 'MySQL/MariaDB connection pool size.', minimum: 1, maximum: 256, aliases: ['TESSERA_DB_POOL_MAX'] }),
    acquireTimeoutMs: Ms(10_000, {
      description:
        'How long a query waits for a database connection (MySQL/MariaDB: a free pooled one, or a new one to connect; SQLite: its one connection) before its request answers 503.',
      minimum: 10,
      maximum: 600_000,
    }),
    commitConcurrency: Int(4, {
      description:
        'MySQL/MariaDB: store-invite group commits in flight at once; at most poolMax - 1. 1 makes the largest batches and lets email fall behind least under full load, at fewer invitations a second.',
      minimum: 1,
      maximum: 16,
      aliases: ['TESSERA_DB_COMMIT_CONCURRENCY'],
    }),
  }),
  keys: Section('The long-term ed25519 signing key.', {
    signingKeyFile: Str('', {
      description:
        'Key file in Sydent\'s ed25519.signingkey format ("ed25519 0 <base64 seed>"), generated with mode 0600 on first start if missing; a Sydent key can be reused as is.',
      derived: '<dataDir>/signing.key',
      aliases: ['TESSERA_SIGNING_KEY_FILE'],
    }),
    signingKey: Str('', {
      description: 'The key itself ("ed25519 0 <base64 seed>"), instead of a file.',
      aliases: ['TESSERA_SIGNING_KEY'],
    }),
    trustedOldKeys: Type.Array(
      Type.Object(
        { keyId: Type.String({ pattern: '^ed25519:[A-Za-z0-9_]+$' }), publicKey: Type.String({ minLength: 43 }) },
        { additionalProperties: false },
      ),
      {
        default: [],
        description:
          'Rotated-out keys that /pubkey/isvalid still reports valid: a list of {keyId: "ed25519:old", publicKey: "<unpadded base64>"}. In the environment: JSON.',
      },
    ),
    rotatedKeyLifetimeMs: Ms(90 * DAY, {
      description:
        'After `tessera keys rotate`, how long the previous key stays valid on /pubkey/isvalid, is served on /pubkey/{keyId} and co-signs invitations delivered by onbind. Keep it at least invites.lifetimeMs, so that no pending invitation outlives the key it was stored under.',
      minimum: 60_000,
    }),
    refreshIntervalMs: Ms(5_000, {
      description: "How often each instance reads the signing keys' record, to follow a rotation made elsewhere.",
      minimum: 100,
      maximum: 3_600_000,
    }),
  }),
  invites: Section('store-invite: invitations and their ephemeral keys.', {
    redactChars: Int(3, {
      description:
        'Characters of each side of the address kept in display_name: 3 gives ali...@exa... Large providers use 1, because 3 can de-anonymise.',
      minimum: 1,
      maximum: 64,
      aliases: ['TESSERA_REDACT_CHARS'],
    }),
    lifetimeMs: Ms(90 * DAY, {
      description: 'How long an invitation and its ephemeral key stay valid.',
      minimum: 60_000,
      aliases: ['TESSERA_INVITE_LIFETIME_MS'],
    }),
    blockedServers: List({
      description:
        'Invitations whose sender is on one of these homeservers are refused (403 M_UNAUTHORIZED). Entries match any port and any letter case ("evil.example" blocks "@x:Evil.Example:8448").',
    }),
    blockedRooms: List({ description: 'Invitations into these rooms are refused.' }),
    blockedKeywords: List(
      {
        description:
          'Invitations whose room name, room alias, sender display name or sender contains one of these (case-insensitive substring) are refused.',
      },
      { minLength: 1 },
    ),
    sweepIntervalMs: Ms(3600 * 1000, { description: 'How often expired invitations are deleted.', minimum: 1000 }),
  }),
  rateLimits: Section(
    'Fixed-window limits counted in the database, so that every instance sharing it enforces one limit. Over a limit: 429 M_LIMIT_EXCEEDED with retry_after_ms. 0 switches a limit off.',
    {
      windowMs: Ms(60_000, { description: 'Length of one window.', minimum: 1000, aliases: ['TESSERA_RATELIMIT_WINDOW_MS'] }),
      storeInvitePerIp: Int(1200, {
        description:
          "store-invite calls per client IP. A homeserver sends all its users' invitations from one address, hence the high figure.",
        minimum: 0,
        aliases: ['TESSERA_RATELIMIT_INVITES_PER_IP'],
      }),
      storeInvitePerSender: Int(60, {
        description: "store-invite calls per sender: the token's user on v2, the declared sender on v1.",
        minimum: 0,
        aliases: ['TESSERA_RATELIMIT_INVITES_PER_SENDER'],
      }),
      storeInvitePerAddress: Int(10, {
        description: 'store-invite calls per invited address.',
        minimum: 0,
        aliases: ['TESSERA_RATELIMIT_INVITES_PER_ADDRESS'],
      }),
      requestTokenPerIp: Int(60, {
        description:
          'validate/email/requestToken: sessions created and emails re-sent per client IP (v1 needs no login). A repeated send_attempt, which sends nothing, is not counted.',
        minimum: 0,
        aliases: ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_IP'],
      }),
      requestTokenPerAddress: Int(5, {
        description: 'validate/email/requestToken: sessions created and emails re-sent per address.',
        minimum: 0,
        aliases: ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_ADDRESS'],
      }),
    },
  ),
  log: Section('Logging.', {
    level: OneOf(['debug', 'info', 'warn', 'error', 'silent'] as const satisfies readonly LogLevel[], 'info', {
      description: 'Least severe level logged.',
    }),
    format: OneOf(['auto', 'json', 'pretty'] as const satisfies readonly LogFormat[], 'auto', {
      description:
        'json: one JSON object per line on stderr (for log collectors); pretty: readable lines; auto: pretty when stderr is a terminal, else json.',
    }),
    requestContext: Bool(true, {
      description:
        "Every line logged while a request is handled carries its request_id. Off: only the line of a failed request does, and Node 20's AsyncLocalStorage, which hooks every promise, stays unused: key-validity checks then answer at a higher share of a bare endpoint's rate (docs/performance.md).",
    }),
  }),
  federation: Section(
    'Outgoing HTTPS calls to homeservers (OpenID userinfo for /account/register, onbind). Server names are resolved with the Matrix discovery rules (IP literal, explicit port, .well-known/matrix/server, SRV _matrix-fed._tcp then _matrix._tcp, port 8448).',
    {
      verifyTls: Bool(true, { description: 'Verify homeserver TLS certificates. Turn off only in test deployments.' }),
      // A host name, or an IPv4/IPv6 address with an optional /prefix.
      allow: List(
        {
          description:
            'Host names or CIDR ranges exempt from the outbound deny list. Outbound calls never reach loopback, private, link-local, CGNAT, multicast, unspecified, IPv6 ULA/link-local or IPv4-mapped addresses, whatever DNS says, unless allowed here; e.g. 127.0.0.1/32, hs.internal.',
        },
        { pattern: '^([A-Za-z0-9.-]+|[0-9.]+(/\\d{1,2})?|[0-9A-Fa-f:.]+(/\\d{1,3})?)$' },
      ),
      requestTimeoutMs: Ms(10_000, {
        description: 'Deadline for one call to a homeserver, discovery excluded.',
        minimum: 100,
        maximum: 300_000,
        aliases: ['TESSERA_FEDERATION_TIMEOUT_MS'],
      }),
      maxResponseBytes: Int(1024 * 1024, { description: 'Largest homeserver response accepted, in bytes.', minimum: 1024 }),
    },
  ),
  accounts: Section("v2 accounts: /account/register with an OpenID token checked with the user's homeserver.", {
    tokenLifetimeMs: Ms(30 * DAY, {
      description: 'How long an identity-server access token stays valid after registration.',
      minimum: 60_000,
      aliases: ['TESSERA_ACCOUNT_TOKEN_LIFETIME_MS'],
    }),
    allowedServers: List(
      {
        description: 'When not empty, only users of these homeservers (server names) may register.',
        aliases: ['TESSERA_ACCOUNT_ALLOWED_SERVERS'],
      },
      { pattern: SERVER_NAME },
    ),
  }),
  terms: Section('Terms of service users must accept before using the v2 API.', {
    file: Str('', {
      description:
        "A terms file in Sydent's YAML layout (master_version, docs.<policy>.version, docs.<policy>.langs.<lang>.name|url); a Sydent terms file works unchanged. Empty: no terms, GET /terms answers empty policies, and nothing is gated.",
    }),
  }),
  mail,
  performance: Section('Request-path speed-ups that are switchable because they trade something.', {
    keyValidityCacheMs: Ms(1000, {
      description:
        '/pubkey/ephemeral/isvalid answers are reused in memory for at most this long; 0 turns the cache off. Expiry is always exact and deletions made by this instance are seen at once, but a key deleted by another instance sharing the database may still answer valid for up to this long.',
      minimum: 0,
      maximum: 1000,
      aliases: ['TESSERA_KEY_VALIDITY_CACHE_MS'],
    }),
    bulkConcurrency: Int(2, {
      description:
        'Bulk look-ups (operations marked x-tessera-bulk in the API document: v2 /lookup, v1 /bulk_lookup) processed at once; the rest wait in arrival order once their bodies are read. Bounds memory and keeps latency fair under a burst.',
      minimum: 1,
      maximum: 1000,
      aliases: ['TESSERA_BULK_CONCURRENCY'],
    }),
    heapGrowingPercent: Int(20, {
      description:
        "How far V8 lets the old generation grow over its live size before a full GC, in percent (V8's --heap-growing-percent, set at start-up). Lower: less memory, more GC work. 0: V8's own heuristics, which let the heap reach several times its live size in bursts.",
      minimum: 0,
      maximum: 1000,
      aliases: ['TESSERA_HEAP_GROWING_PERCENT'],
    }),
    keyWorker: Bool(true, {
      description:
        'During bursts of store-invite, make the ephemeral key pairs ahead of time on one worker thread, which takes the key generation off the event loop for some memory while the burst lasts (src/invitations/ephemeralKeys.ts says when it starts and stops). Off: always on the request path.',
      aliases: ['TESSERA_KEY_WORKER'],
    }),
  }),
  binding: Section('Validation sessions, associations and lookups.', {
    sessionLifetimeMs: Ms(DAY, {
      description: 'How long a validation session lives: from creation until validated, then from validation until it is used to bind.',
      minimum: 1000,
      aliases: ['TESSERA_SESSION_LIFETIME_MS'],
    }),
    tokenLifetimeMs: Ms(DAY, {
      description: 'How long the emailed token can be submitted.',
      minimum: 1000,
      aliases: ['TESSERA_VALIDATION_TOKEN_LIFETIME_MS'],
    }),
    associationLifetimeMs: Ms(100 * 365 * DAY, {
      description: 'not_after - not_before of a signed association.',
      minimum: 60_000,
      aliases: ['TESSERA_ASSOCIATION_LIFETIME_MS'],
    }),
    lookupPepper: Str('', {
      description:
        'Pepper of v2 hashed lookups. Empty: generated once and kept in the database. Set a new value to rotate it: start-up rehashes every association, and clients holding the old one get 400 M_INVALID_PEPPER and fetch /hash_details again.',
      pattern: '^[A-Za-z0-9._~-]*$',
      maxLength: 255,
      aliases: ['TESSERA_LOOKUP_PEPPER'],
    }),
  }),
  onbind: Section("Delivery of the signed invitations to the invitee's homeserver after a bind (onbind callbacks).", {
    invitesPerCall: Int(100, {
      description: 'Invitations per onbind call; a bind with more pending invitations makes several calls.',
      minimum: 1,
      maximum: 1000,
    }),
    initialBackoffMs: Ms(5000, {
      description: 'First retry delay; doubles per attempt up to maxBackoffMs, with jitter (between half and all of the delay).',
      minimum: 1,
    }),
    maxBackoffMs: Ms(3600 * 1000, { description: 'Longest retry delay.', minimum: 1 }),
    leaseMs: Ms(15_000, {
      description:
        'How long a claimed delivery stays reserved for one worker unless renewed; after a crash it is picked up this long after the last renewal.',
      minimum: 100,
    }),
    leaseRenewMs: Ms(0, {
      description: 'How often a worker renews the leases of the deliveries it holds; less than leaseMs. 0: a third of leaseMs.',
      derived: 'a third of onbind.leaseMs (when 0)',
      minimum: 0,
    }),
    pollIntervalMs: Ms(30_000, {
      description: 'Polling interval besides being woken after each bind.',
      minimum: 10,
    }),
    concurrency: Int(4, {
      description: 'Deliveries in flight at once per process.',
      minimum: 1,
      maximum: 64,
    }),
    keepFinishedMs: Ms(7 * DAY, { description: 'Finished (delivered or failed) outbox rows are deleted after this long.', minimum: 0 }),
    // An onbind is useless once its invitations have expired, hence the derived default.
    giveUpAfterMs: Ms(0, {
      description:
        'Retryable failures (5xx, 429, DNS, refused, timeouts) are given up this long after the bind, and the row marked failed with the reason. 0: invites.lifetimeMs.',
      derived: 'invites.lifetimeMs (when 0)',
      minimum: 0,
    }),
  }),
});

export type Config = Static<typeof ConfigSchema>;
export type MailConfig = Config['mail'];
export type { LogLevel };
