// The FederationClient used for OpenID userinfo and onbind: discovery + address policy + HTTPS transport.
import { ConfigError, type Config } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import { AddressPolicy } from './addresses.js';
import { Discovery, type WellKnownOptions } from './discovery.js';
import { Transport, systemResolver, type Destination, type RawResponse, type Resolver } from './transport.js';
import { FederationError, type FederationClient, type FederationResponse } from './types.js';

export interface HttpFederationClientOptions {
  /** Verify homeserver certificates (default true; only test deployments turn it off). */
  verifyTls?: boolean;
  /** Host names or CIDR ranges exempt from the outbound deny list. */
  allow?: readonly string[];
  /** Replaces the default deny list (tests only). */
  deny?: readonly string[];
  /** Deadline for each call, discovery excluded, in ms. */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. */
  maxResponseBytes?: number;
  resolver?: Resolver;
  clock?: () => number;
  wellKnown?: Partial<WellKnownOptions>;
  ca?: string | Buffer | (string | Buffer)[];
  log?: Logger;
}

export class HttpFederationClient implements FederationClient {
  readonly discovery: Discovery;
  readonly transport: Transport;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(opts: HttpFederationClientOptions = {}) {
    const resolver = opts.resolver ?? systemResolver;
    this.transport = new Transport({
      policy: new AddressPolicy(opts.allow ?? [], opts.deny),
      resolver,
      verifyTls: opts.verifyTls ?? true,
      ca: opts.ca,
    });
    this.discovery = new Discovery({ transport: this.transport, resolver, clock: opts.clock ?? Date.now, wellKnown: opts.wellKnown });
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxResponseBytes = opts.maxResponseBytes ?? 1024 * 1024;
    this.log = opts.log;
  }

  private readonly log?: Logger;

  getJson(serverName: string, path: string, query?: Record<string, string>): Promise<FederationResponse> {
    const qs = query && Object.keys(query).length > 0 ? `?${new URLSearchParams(query).toString()}` : '';
    return this.call(serverName, 'GET', `${path}${qs}`);
  }

  postJson(serverName: string, path: string, body: unknown): Promise<FederationResponse> {
    return this.call(serverName, 'POST', path, Buffer.from(JSON.stringify(body), 'utf8'));
  }

  /** Like getJson/postJson, but also says which destination answered (tests, diagnostics). */
  async call(
    serverName: string,
    method: 'GET' | 'POST',
    pathAndQuery: string,
    body?: Buffer,
  ): Promise<FederationResponse & { raw: RawResponse }> {
    if (!pathAndQuery.startsWith('/')) throw new FederationError('path must start with /', true);
    const destinations: Destination[] = await this.discovery.resolve(serverName);
    let raw: RawResponse;
    try {
      raw = await this.transport.request(destinations, {
        method,
        path: pathAndQuery,
        headers: body ? { 'content-type': 'application/json' } : {},
        body,
        timeoutMs: this.timeoutMs,
        maxBytes: this.maxResponseBytes,
      });
    } catch (err) {
      // The path only: query strings carry OpenID tokens.
      this.log?.debug('federation call failed', { server: serverName, path: pathAndQuery.split('?')[0], err: (err as Error).message });
      throw err;
    }
    let parsed: unknown;
    if (raw.body.length > 0) {
      try {
        parsed = JSON.parse(raw.body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
    }
    return { status: raw.status, body: parsed, raw };
  }
}

/** The client the service uses, from the `federation` config section. */
export function federationClientFromConfig(config: Config, log?: Logger, clock?: () => number): HttpFederationClient {
  const f = config.federation;
  try {
    return new HttpFederationClient({
      verifyTls: f.verifyTls,
      allow: f.allow,
      timeoutMs: f.requestTimeoutMs,
      maxResponseBytes: f.maxResponseBytes,
      clock,
      log,
    });
  } catch (err) {
    // A malformed allow-list entry (e.g. 10.0.0.0/40) is an operator error: report it like one.
    throw new ConfigError([(err as Error).message]);
  }
}
