// Homeserver request authentication (`Authorization: X-Matrix ...`), as Synapse uses it to unbind an address when a
// user removes it or deactivates their account. The origin's signing keys come from its /_matrix/key/v2/server, over
// the federation client (discovery, outbound address policy, HTTPS), and are cached with a bounded lifetime and size.
import { isXMatrix, type RequestSignatureVerifier, type SignedRequest } from '../platform/http/security.js';
import { operations as homeserverOps } from '../../generated/homeserver.validators.js';
import { canonicalJson } from '../keys/canonicalJson.js';
import { verifyDetached } from '../keys/ed25519.js';
import { decodeAny } from '../platform/base64.js';
import type { Logger } from '../platform/logger.js';
import { parseServerName } from './discovery.js';
import type { FederationClient } from './types.js';

export const SERVER_KEYS_PATH = '/_matrix/key/v2/server';

export interface XMatrixHeader {
  origin: string;
  key: string;
  sig: string;
  destination?: string;
}

export { isXMatrix };

const PARAM = /[ \t]*([A-Za-z0-9_-]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^",\s]*))[ \t]*(?:,|$)/y;

/**
 * Parses `X-Matrix origin="hs.example",destination="is.example",key="ed25519:abc",sig="..."`. Values may be quoted
 * (with backslash escapes) or bare; names are case-insensitive; unknown parameters are ignored. Undefined when the
 * header is malformed, a parameter repeats, or origin/key/sig is missing or empty.
 */
export function parseXMatrix(value: string): XMatrixHeader | undefined {
  const m = /^X-Matrix[ \t]+(.*)$/is.exec(value);
  if (!m) return undefined;
  const text = m[1]!.trimEnd();
  const params = new Map<string, string>();
  PARAM.lastIndex = 0;
  while (PARAM.lastIndex < text.length) {
    const p = PARAM.exec(text);
    if (!p) return undefined;
    const name = p[1]!.toLowerCase();
    if (params.has(name)) return undefined;
    params.set(name, p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin || !key || !sig) return undefined;
  const destination = params.get('destination');
  return { origin, key, sig, ...(destination !== undefined ? { destination } : {}) };
}

export interface ServerKeyCacheOptions {
  federation: FederationClient;
  clock: () => number;
  log?: Logger;
  /** Longest a fetched key set is trusted, whatever its valid_until_ts (default one hour). */
  maxLifetimeMs?: number;
  /** Most origins kept; the least recently fetched is dropped first (default 1000). */
  maxEntries?: number;
  /** A failed fetch, or a key id the cached set lacks, is not retried sooner than this (default one minute). */
  retryAfterMs?: number;
}

interface Entry {
  keys: Map<string, Uint8Array>;
  fetchedAt: number;
  expiresAt: number;
}

const KEY_ID = /^ed25519:[A-Za-z0-9_]{1,64}$/;

/** The verified current signing keys of homeservers, by server name. */
export class ServerKeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly maxLifetimeMs: number;
  private readonly maxEntries: number;
  private readonly retryAfterMs: number;

  constructor(private readonly opts: ServerKeyCacheOptions) {
    this.maxLifetimeMs = opts.maxLifetimeMs ?? 60 * 60 * 1000;
    this.maxEntries = opts.maxEntries ?? 1000;
    this.retryAfterMs = opts.retryAfterMs ?? 60 * 1000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The public key `keyId` of `origin`, verified; undefined when the origin does not vouch for it (now). */
  async key(origin: string, keyId: string): Promise<Uint8Array | undefined> {
    const now = this.opts.clock();
    let entry = this.entries.get(origin);
    if (entry && entry.expiresAt <= now) {
      this.entries.delete(origin);
      entry = undefined;
    }
    // A key id we do not have is fetched again, but at most once per retryAfterMs: a stream of requests naming
    // made-up key ids must not turn into a stream of calls to the origin.
    if (entry && (entry.keys.has(keyId) || now - entry.fetchedAt < this.retryAfterMs)) return entry.keys.get(keyId);
    let pending = this.inflight.get(origin);
    if (!pending) {
      pending = this.fetch(origin).finally(() => this.inflight.delete(origin));
      this.inflight.set(origin, pending);
    }
    entry = await pending;
    return entry.keys.get(keyId);
  }

  private remember(origin: string, entry: Entry): Entry {
    this.entries.delete(origin);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(origin, entry);
    return entry;
  }

  private async fetch(origin: string): Promise<Entry> {
    const fetchedAt = this.opts.clock();
    let keys = new Map<string, Uint8Array>();
    let expiresAt = fetchedAt + this.retryAfterMs; // failures are remembered briefly, as an empty key set
    try {
      const res = await this.opts.federation.getJson(origin, SERVER_KEYS_PATH);
      const verified = res.status === 200 ? verifyKeyResponse(res.body, origin, this.opts.clock()) : { error: `status ${res.status}` };
      if ('error' in verified) {
        this.opts.log?.info('server keys refused', { server: origin, reason: verified.error });
      } else {
        keys = verified.keys;
        expiresAt = Math.min(verified.validUntil, fetchedAt + this.maxLifetimeMs);
      }
    } catch (err) {
      this.opts.log?.info('server keys unavailable', { server: origin, err: (err as Error).message });
    }
    return this.remember(origin, { keys, fetchedAt, expiresAt });
  }
}

/**
 * Checks a /_matrix/key/v2/server answer for `origin`: it matches openapi/homeserver.yaml, names the origin, is still
 * valid at `now`, and each key kept has signed the answer itself. Only the self-signed ed25519 `verify_keys` are kept.
 */
export function verifyKeyResponse(
  body: unknown,
  origin: string,
  now: number,
): { keys: Map<string, Uint8Array>; validUntil: number } | { error: string } {
  if (!homeserverOps.getServerKeys.responses['200']!(body)) return { error: 'answer does not match the schema' };
  const doc = body as {
    server_name: string;
    valid_until_ts: number;
    verify_keys: Record<string, { key: string }>;
    signatures: Record<string, Record<string, string>>;
  };
  if (doc.server_name !== origin) return { error: 'server_name is not the origin' };
  if (!(doc.valid_until_ts > now)) return { error: 'valid_until_ts has passed' };
  let message: Buffer;
  try {
    const { signatures: _s, unsigned: _u, ...rest } = doc as Record<string, unknown>;
    message = Buffer.from(canonicalJson(rest), 'utf8');
  } catch {
    return { error: 'answer is not canonical JSON' };
  }
  const keys = new Map<string, Uint8Array>();
  for (const [keyId, { key }] of Object.entries(doc.verify_keys)) {
    if (!KEY_ID.test(keyId)) continue;
    const publicKey = decodeAny(key);
    const sig = doc.signatures[origin]?.[keyId];
    const signature = sig === undefined ? undefined : decodeAny(sig);
    if (publicKey?.length === 32 && signature && verifyDetached(publicKey, message, signature)) keys.set(keyId, publicKey);
  }
  if (keys.size === 0) return { error: 'no verify key signed the answer' };
  return { keys, validUntil: doc.valid_until_ts };
}

export type XMatrixResult = { origin: string } | { error: string };

/** Verifies X-Matrix requests addressed to `serverName` (this identity server). */
export class XMatrixVerifier implements RequestSignatureVerifier {
  constructor(
    private readonly serverName: string,
    private readonly keys: ServerKeyCache,
  ) {}

  async verify(header: string, req: SignedRequest): Promise<XMatrixResult> {
    const auth = parseXMatrix(header);
    if (!auth) return { error: 'malformed X-Matrix header' };
    if (!parseServerName(auth.origin)) return { error: 'origin is not a server name' };
    if (auth.destination !== undefined && auth.destination.toLowerCase() !== this.serverName.toLowerCase())
      return { error: 'destination is another server' };
    if (!KEY_ID.test(auth.key)) return { error: 'unsupported key id' };
    const signature = decodeAny(auth.sig);
    if (!signature || signature.length !== 64) return { error: 'malformed signature' };
    const publicKey = await this.keys.key(auth.origin, auth.key);
    if (!publicKey) return { error: 'the origin does not vouch for that key' };
    // Synapse signs `destination_is` (identity servers); the federation form signs `destination`. Both name us.
    for (const destinationField of ['destination_is', 'destination']) {
      const signed: Record<string, unknown> = {
        method: req.method,
        uri: req.uri,
        origin: auth.origin,
        [destinationField]: this.serverName,
      };
      if (req.content !== undefined) signed.content = req.content;
      let message: Buffer;
      try {
        message = Buffer.from(canonicalJson(signed), 'utf8');
      } catch {
        return { error: 'content is not canonical JSON' };
      }
      if (verifyDetached(publicKey, message, signature)) return { origin: auth.origin };
    }
    return { error: 'signature does not verify' };
  }
}
