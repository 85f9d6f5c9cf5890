// Matrix server-name discovery (server-server API, "Resolving server names"; identity-api.md section 5):
//  1. IP literal, with or without port (default 8448);
//  2. host name with an explicit port;
//  3. https://<host>/.well-known/matrix/server -> m.server (delegated name), then for the delegated name:
//     IP literal / explicit port / SRV _matrix-fed._tcp / SRV _matrix._tcp / port 8448;
//  4. SRV _matrix-fed._tcp.<host>, 5. SRV _matrix._tcp.<host>, 6. <host>:8448.
// Host header and TLS SNI name the (delegated) server name, never the SRV target.
import { isIP } from 'node:net';
import { operations as homeserverOps } from '../../generated/homeserver.validators.js';
import { isHostname } from './addresses.js';
import { FederationError } from './types.js';
import type { Destination, Resolver, SrvRecord, Transport } from './transport.js';

export const DEFAULT_FEDERATION_PORT = 8448;

export interface ServerName {
  /** Host name or IP literal, without IPv6 brackets. */
  host: string;
  port?: number;
  ip: boolean;
  /** As written, with brackets around IPv6 literals: the Host header value. */
  text: string;
}

/** Parses a Matrix server name (`host`, `host:port`, `1.2.3.4:port`, `[::1]:port`); undefined when malformed. */
export function parseServerName(text: string): ServerName | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 255) return undefined;
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (isIP(host) !== 6) return undefined;
  } else {
    const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
    if (!m) return undefined;
    host = m[1]!;
    portText = m[2];
    if (isIP(host) !== 4 && (!isHostname(host) || /^[\d.]+$/.test(host))) return undefined;
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  return { host, port, ip: isIP(host) !== 0, text };
}

export interface WellKnownOptions {
  /** Port the .well-known request goes to (443; tests point it at a loopback server). */
  port: number;
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
  /** Lifetime of a success without (or beyond the bounds of) Cache-Control max-age. */
  defaultCacheMs: number;
  minCacheMs: number;
  maxCacheMs: number;
  /** Lifetime of a failure (no file, bad JSON, timeout...). */
  failureCacheMs: number;
  /** Entries kept at most; the oldest goes first. */
  cacheEntries: number;
}

export const WELL_KNOWN_DEFAULTS: WellKnownOptions = {
  port: 443,
  timeoutMs: 5000,
  maxBytes: 50 * 1024,
  maxRedirects: 3,
  defaultCacheMs: 24 * 3600_000,
  minCacheMs: 5 * 60_000,
  maxCacheMs: 48 * 3600_000,
  failureCacheMs: 3600_000,
  cacheEntries: 10_000,
};

interface CacheEntry {
  /** The delegated server name, or undefined for a cached failure. */
  server: ServerName | undefined;
  expires: number;
}

export interface DiscoveryOptions {
  transport: Transport;
  resolver: Resolver;
  clock: () => number;
  wellKnown?: Partial<WellKnownOptions>;
}

export class Discovery {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<ServerName | undefined>>();
  readonly wellKnownOptions: WellKnownOptions;

  constructor(private readonly opts: DiscoveryOptions) {
    this.wellKnownOptions = { ...WELL_KNOWN_DEFAULTS, ...opts.wellKnown };
  }

  /** Where to send requests for `serverName`, in the order to try them. Throws FederationError (permanent) on a malformed name. */
  async resolve(serverName: string): Promise<Destination[]> {
    const name = parseServerName(serverName);
    if (!name) throw new FederationError('malformed server name', true);
    // Steps 1 and 2: IP literal, or explicit port: no delegation.
    if (name.ip || name.port !== undefined) return [direct(name)];
    // Step 3: .well-known delegation.
    const delegated = await this.wellKnown(name.host);
    if (delegated) {
      if (delegated.ip || delegated.port !== undefined) return [direct(delegated)];
      const srv = await this.srv(delegated.host);
      if (srv.length > 0) return srv.map((r) => ({ host: r.name, port: r.port, hostHeader: delegated.text, tlsName: delegated.host }));
      return [{ host: delegated.host, port: DEFAULT_FEDERATION_PORT, hostHeader: delegated.text, tlsName: delegated.host }];
    }
    // Steps 4-6: SRV on the server name itself, then port 8448.
    const srv = await this.srv(name.host);
    if (srv.length > 0) return srv.map((r) => ({ host: r.name, port: r.port, hostHeader: name.text, tlsName: name.host }));
    return [{ host: name.host, port: DEFAULT_FEDERATION_PORT, hostHeader: name.text, tlsName: name.host }];
  }

  /** SRV `_matrix-fed._tcp` then the deprecated `_matrix._tcp`; ordered by priority, then weight (heaviest first). */
  private async srv(host: string): Promise<SrvRecord[]> {
    for (const prefix of ['_matrix-fed._tcp.', '_matrix._tcp.']) {
      let records: SrvRecord[];
      try {
        records = await this.opts.resolver.resolveSrv(prefix + host);
      } catch {
        continue;
      }
      // A single "." target means the service is decidedly not available there (RFC 2782).
      const usable = records.filter((r) => r.name !== '' && r.name !== '.' && r.port > 0 && isHostnameOrIp(r.name.replace(/\.$/, '')));
      if (usable.length === 0) continue;
      return usable.map((r) => ({ ...r, name: r.name.replace(/\.$/, '') })).sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    }
    return [];
  }

  /** The delegated server name from `.well-known/matrix/server`, cached (failures too), or undefined. */
  async wellKnown(host: string): Promise<ServerName | undefined> {
    const key = host.toLowerCase();
    const now = this.opts.clock();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.server;
    if (hit) this.cache.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const p = this.fetchWellKnown(key)
      .then(({ server, cacheMs }) => {
        this.remember(key, { server, expires: this.opts.clock() + cacheMs });
        return server;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /** Number of cached well-known answers (tests check the bound). */
  get cacheSize(): number {
    return this.cache.size;
  }

  private remember(key: string, entry: CacheEntry): void {
    this.cache.delete(key);
    while (this.cache.size >= this.wellKnownOptions.cacheEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    this.cache.set(key, entry);
  }

  private async fetchWellKnown(host: string): Promise<{ server: ServerName | undefined; cacheMs: number }> {
    const o = this.wellKnownOptions;
    const failure = { server: undefined, cacheMs: o.failureCacheMs };
    let dest: Destination = { host, port: o.port, hostHeader: o.port === 443 ? host : `${host}:${o.port}`, tlsName: host };
    let path = '/.well-known/matrix/server';
    const started = Date.now();
    for (let hop = 0; ; hop++) {
      const remaining = o.timeoutMs - (Date.now() - started);
      if (remaining <= 0) return failure;
      let res;
      try {
        res = await this.opts.transport.request([dest], { method: 'GET', path, timeoutMs: remaining, maxBytes: o.maxBytes });
      } catch {
        return failure;
      }
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        if (hop >= o.maxRedirects) return failure;
        const next = redirectTarget(res.headers.location, dest, path);
        if (!next) return failure;
        ({ dest, path } = next);
        continue;
      }
      if (res.status !== 200) return failure;
      let body: unknown;
      try {
        body = JSON.parse(res.body.toString('utf8'));
      } catch {
        return failure;
      }
      if (!homeserverOps.getWellKnownServer.responses['200']!(body)) return failure;
      const server = parseServerName((body as Record<string, string>)['m.server']!);
      if (!server) return failure;
      return { server, cacheMs: cacheLifetime(res.headers['cache-control'], o) };
    }
  }
}

function isHostnameOrIp(s: string): boolean {
  return isIP(s) !== 0 || isHostname(s);
}

function direct(name: ServerName): Destination {
  return { host: name.host, port: name.port ?? DEFAULT_FEDERATION_PORT, hostHeader: name.text, tlsName: name.ip ? undefined : name.host };
}

/** A redirect is followed only to another https URL; it goes through the same address policy. */
function redirectTarget(
  location: string | undefined,
  from: Destination,
  fromPath: string,
): { dest: Destination; path: string } | undefined {
  if (!location) return undefined;
  let url: URL;
  try {
    url = new URL(location, `https://${from.hostHeader}${fromPath}`);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' || url.username || url.password) return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isHostnameOrIp(host)) return undefined;
  const port = url.port ? Number(url.port) : 443;
  return { dest: { host, port, hostHeader: url.host, tlsName: isIP(host) ? undefined : host }, path: `${url.pathname}${url.search}` };
}

function cacheLifetime(header: string | undefined, o: WellKnownOptions): number {
  const m = header ? /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(header) : null;
  if (!m) return o.defaultCacheMs;
  const ms = Number(m[1]) * 1000;
  return Math.min(o.maxCacheMs, Math.max(o.minCacheMs, ms));
}
