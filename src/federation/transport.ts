// One HTTPS exchange with a homeserver: resolve the host ourselves, drop denied addresses, dial the
// remaining IPs directly (SNI and Host from the delegated name), with a deadline and a size cap.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { lookup as dnsLookup, resolveSrv as dnsResolveSrv } from 'node:dns/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { FederationError } from './types.js';
import type { AddressPolicy } from './addresses.js';

/** Where to send a request: the name to resolve (or an IP literal), the port, and how to name the peer. */
export interface Destination {
  /** DNS name or IP literal (no brackets) to connect to. */
  host: string;
  port: number;
  /** The Host header: the (delegated) server name. */
  hostHeader: string;
  /** TLS SNI and the name the certificate must carry; undefined for IP literals (checked against the IP). */
  tlsName?: string;
}

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The DNS seam: tests answer from a table, production asks node:dns. */
export interface Resolver {
  /** Every address `host` resolves to (A and AAAA). Rejects (or returns []) when there is none. */
  lookup(host: string): Promise<string[]>;
  /** SRV records for a full name like `_matrix-fed._tcp.example.org`; rejects or returns [] when there are none. */
  resolveSrv(name: string): Promise<SrvRecord[]>;
}

/** Rejects when `p` has not settled within `ms` (DNS look-ups have no deadline of their own). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Deadline of one DNS query (A/AAAA or SRV). */
export const DNS_TIMEOUT_MS = 5000;

export const systemResolver: Resolver = {
  async lookup(host) {
    const all = await withTimeout(dnsLookup(host, { all: true, verbatim: true }), DNS_TIMEOUT_MS, 'DNS look-up');
    return all.map((a) => a.address);
  },
  resolveSrv: (name) => withTimeout(dnsResolveSrv(name), DNS_TIMEOUT_MS, 'SRV look-up'),
};

export interface TransportOptions {
  policy: AddressPolicy;
  resolver: Resolver;
  verifyTls: boolean;
  /** Extra trusted CA certificates (PEM); tests use it to keep verification on against a self-signed peer. */
  ca?: string | Buffer | (string | Buffer)[];
}

export interface RawRequest {
  method: 'GET' | 'POST';
  /** Path and query string, starting with `/`. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Deadline for the whole exchange (all addresses tried), in ms. */
  timeoutMs: number;
  /** Larger bodies abort the exchange. */
  maxBytes: number;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The address that answered (tests assert on it). */
  address: string;
}

/** Raised before any byte was sent to this address: the next address may be tried. */
class ConnectError extends Error {}

export class Transport {
  /**
   * Built once: without it every request builds its own TLS context (the trust store and options), a
   * noticeable share of a bind's CPU. Certificate and host name checks stay per connection.
   */
  private readonly secureContext: SecureContext;

  constructor(private readonly opts: TransportOptions) {
    this.secureContext = createSecureContext(opts.ca === undefined ? {} : { ca: opts.ca });
  }

  /** Resolves the destinations in order and returns the addresses we may dial, or throws FederationError. */
  async addressesOf(destinations: Destination[]): Promise<{ dest: Destination; ip: string }[]> {
    const out: { dest: Destination; ip: string }[] = [];
    let denied = 0;
    let resolveFailures = 0;
    for (const dest of destinations) {
      let ips: string[];
      if (isIP(dest.host)) ips = [dest.host];
      else {
        try {
          ips = await this.opts.resolver.lookup(dest.host);
        } catch {
          ips = [];
        }
        if (ips.length === 0) resolveFailures++;
      }
      for (const ip of ips) {
        if (this.opts.policy.permits(ip, isIP(dest.host) ? undefined : dest.host)) out.push({ dest, ip });
        else denied++;
      }
    }
    if (out.length === 0) {
      if (denied > 0) throw new FederationError('the homeserver resolves only to addresses outbound calls may not reach', true, true);
      throw new FederationError(resolveFailures > 0 ? 'the homeserver host name does not resolve' : 'no address to connect to');
    }
    return out;
  }

  async request(destinations: Destination[], req: RawRequest): Promise<RawResponse> {
    const deadline = Date.now() + req.timeoutMs;
    const targets = await this.addressesOf(destinations);
    let lastError: Error | undefined;
    for (const { dest, ip } of targets) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        return await this.once(dest, ip, req, remaining);
      } catch (err) {
        if (err instanceof ConnectError) {
          lastError = err;
          continue;
        }
        throw err;
      }
    }
    throw new FederationError(lastError ? `could not connect: ${lastError.message}` : 'timed out before connecting');
  }

  private once(dest: Destination, ip: string, req: RawRequest, timeoutMs: number): Promise<RawResponse> {
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      let connected = false;
      const finish = (err: Error | undefined, res?: RawResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          r.destroy();
          reject(err);
        } else resolve(res!);
      };
      const headers: Record<string, string | number> = { ...req.headers, host: dest.hostHeader, accept: 'application/json' };
      if (req.body) headers['content-length'] = req.body.length;
      // secureContext is passed through to tls.connect (Node's https types leave it out of RequestOptions).
      const options: RequestOptions & { secureContext: SecureContext } = {
        host: ip,
        port: dest.port,
        method: req.method,
        path: req.path,
        headers,
        servername: dest.tlsName && !isIP(dest.tlsName) ? dest.tlsName : undefined,
        // With a servername, the certificate is checked against the delegated name, not the IP we dialled.
        rejectUnauthorized: this.opts.verifyTls,
        secureContext: this.secureContext,
        agent: false,
      };
      const r = httpsRequest(options);
      const timer = setTimeout(() => finish(new FederationError(`no answer within ${req.timeoutMs} ms`)), timeoutMs);
      r.on('socket', (socket) => {
        socket.once('secureConnect', () => {
          connected = true;
        });
      });
      r.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!connected && ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EADDRNOTAVAIL'].includes(code)) {
          finish(new ConnectError(`${code}`));
        } else {
          finish(new FederationError(`request failed: ${code || err.message}`));
        }
      });
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > req.maxBytes) {
          finish(new FederationError(`response larger than ${req.maxBytes} bytes`));
          return;
        }
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > req.maxBytes) {
            finish(new FederationError(`response larger than ${req.maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), address: ip }),
        );
        res.on('error', (err) => finish(new FederationError(`response failed: ${err.message}`)));
        res.on('aborted', () => finish(new FederationError('response aborted')));
      });
      r.end(req.body);
    });
  }
}
