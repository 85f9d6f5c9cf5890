// The federation client against real HTTPS servers on loopback. DNS (A/AAAA and SRV) comes from a
// table through the Resolver seam, so every discovery rule is exercised without the internet.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpFederationClient, type HttpFederationClientOptions } from '../../src/federation/client.js';
import type { Resolver, SrvRecord } from '../../src/federation/transport.js';
import { FederationError } from '../../src/federation/types.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';

const WK = '/.well-known/matrix/server';

interface FakeDns extends Resolver {
  calls: string[];
}

function fakeDns(a: Record<string, string[] | (() => string[])>, srv: Record<string, SrvRecord[]> = {}): FakeDns {
  const calls: string[] = [];
  const notFound = (name: string) => Object.assign(new Error(`queryA ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return {
    calls,
    async lookup(host) {
      calls.push(`A ${host}`);
      const r = a[host];
      if (!r) throw notFound(host);
      return typeof r === 'function' ? r() : r;
    },
    async resolveSrv(name) {
      calls.push(`SRV ${name}`);
      const r = srv[name];
      if (!r) throw notFound(name);
      return r;
    },
  };
}

const srvRecord = (name: string, port: number, priority = 10, weight = 5): SrvRecord => ({ name, port, priority, weight });

let hs: FakeHomeserver;
let clock = 1_000_000;

beforeAll(async () => {
  hs = await startFakeHomeserver();
});
afterAll(async () => {
  await hs.stop();
});
beforeEach(() => {
  hs.requests.length = 0;
  clock = 1_000_000;
});

/** A client that trusts the fake's certificate (verification stays on) and may reach 127.0.0.1 only. */
function client(dns: Resolver, extra: HttpFederationClientOptions = {}): HttpFederationClient {
  return new HttpFederationClient({
    allow: ['127.0.0.1/32'],
    ca: hs.cert,
    resolver: dns,
    timeoutMs: 3000,
    clock: () => clock,
    ...extra,
    wellKnown: { port: hs.port, timeoutMs: 1000, ...extra.wellKnown },
  });
}

describe('discovery rules', () => {
  it('1: an IP literal without port goes to 8448, with no DNS and no .well-known', async () => {
    const dns = fakeDns({});
    const dest = await client(dns).discovery.resolve('127.0.0.1');
    expect(dest).toEqual([{ host: '127.0.0.1', port: 8448, hostHeader: '127.0.0.1', tlsName: undefined }]);
    const v6 = await client(dns).discovery.resolve('[::1]');
    expect(v6).toEqual([{ host: '::1', port: 8448, hostHeader: '[::1]', tlsName: undefined }]);
    expect(dns.calls).toEqual([]);
    expect(hs.requests).toEqual([]);
  });

  it('1: an IP literal with port goes to that port', async () => {
    const dest = await client(fakeDns({})).discovery.resolve('127.0.0.1:1234');
    expect(dest).toEqual([{ host: '127.0.0.1', port: 1234, hostHeader: '127.0.0.1:1234', tlsName: undefined }]);
    expect(await client(fakeDns({})).discovery.resolve('[2001:db8::1]:99')).toEqual([
      { host: '2001:db8::1', port: 99, hostHeader: '[2001:db8::1]:99', tlsName: undefined },
    ]);
  });

  it('2: a host name with an explicit port is used as is (no .well-known, no SRV)', async () => {
    const dns = fakeDns({ 'hs.test': ['127.0.0.1'] });
    const dest = await client(dns).discovery.resolve('hs.test:1234');
    expect(dest).toEqual([{ host: 'hs.test', port: 1234, hostHeader: 'hs.test:1234', tlsName: 'hs.test' }]);
    expect(dns.calls).toEqual([]);
    expect(hs.requests).toEqual([]);
  });

  it('3: .well-known delegating to an IP literal', async () => {
    hs.route('GET', WK, { body: { 'm.server': '127.0.0.1:4321' } });
    const dest = await client(fakeDns({ 'hs.test': ['127.0.0.1'] })).discovery.resolve('hs.test');
    expect(dest).toEqual([{ host: '127.0.0.1', port: 4321, hostHeader: '127.0.0.1:4321', tlsName: undefined }]);
    // the .well-known request itself named the original host in SNI and Host
    expect(hs.requestsTo(WK)).toHaveLength(1);
    expect(hs.requestsTo(WK)[0]!.sni).toBe('hs.test');
    expect(hs.requestsTo(WK)[0]!.headers.host).toBe(`hs.test:${hs.port}`);
  });

  it('3: .well-known delegating to host:port (no SRV lookup)', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test:8443' } });
    const dns = fakeDns({ 'hs.test': ['127.0.0.1'] });
    const dest = await client(dns).discovery.resolve('hs.test');
    expect(dest).toEqual([{ host: 'delegated.test', port: 8443, hostHeader: 'delegated.test:8443', tlsName: 'delegated.test' }]);
    expect(dns.calls.filter((c) => c.startsWith('SRV'))).toEqual([]);
  });

  it('3: .well-known delegating to a bare host: SRV _matrix-fed._tcp on the delegated name; Host/SNI stay the delegated name', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test' } });
    const dns = fakeDns(
      { 'hs.test': ['127.0.0.1'] },
      {
        '_matrix-fed._tcp.delegated.test': [
          srvRecord('backup.test.', 9000, 20),
          srvRecord('fed.test.', 8000, 10, 1),
          srvRecord('fed2.test', 8001, 10, 9),
        ],
        '_matrix._tcp.delegated.test': [srvRecord('old.test', 7000)],
      },
    );
    const dest = await client(dns).discovery.resolve('hs.test');
    expect(dest).toEqual([
      { host: 'fed2.test', port: 8001, hostHeader: 'delegated.test', tlsName: 'delegated.test' },
      { host: 'fed.test', port: 8000, hostHeader: 'delegated.test', tlsName: 'delegated.test' },
      { host: 'backup.test', port: 9000, hostHeader: 'delegated.test', tlsName: 'delegated.test' },
    ]);
  });

  it('3: delegated name with only the deprecated _matrix._tcp SRV', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test' } });
    const dns = fakeDns({ 'hs.test': ['127.0.0.1'] }, { '_matrix._tcp.delegated.test': [srvRecord('old.test', 7000)] });
    expect(await client(dns).discovery.resolve('hs.test')).toEqual([
      { host: 'old.test', port: 7000, hostHeader: 'delegated.test', tlsName: 'delegated.test' },
    ]);
    expect(dns.calls).toContain('SRV _matrix-fed._tcp.delegated.test');
  });

  it('3: delegated name without SRV goes to port 8448', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test' } });
    const dns = fakeDns({ 'hs.test': ['127.0.0.1'] }, { '_matrix-fed._tcp.delegated.test': [srvRecord('.', 0)] });
    expect(await client(dns).discovery.resolve('hs.test')).toEqual([
      { host: 'delegated.test', port: 8448, hostHeader: 'delegated.test', tlsName: 'delegated.test' },
    ]);
  });

  it('4: no .well-known: SRV _matrix-fed._tcp on the server name', async () => {
    hs.route('GET', WK, { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } });
    const dns = fakeDns(
      { 'hs.test': ['127.0.0.1'] },
      { '_matrix-fed._tcp.hs.test': [srvRecord('fed.test', 8000)], '_matrix._tcp.hs.test': [srvRecord('old.test', 7000)] },
    );
    expect(await client(dns).discovery.resolve('hs.test')).toEqual([
      { host: 'fed.test', port: 8000, hostHeader: 'hs.test', tlsName: 'hs.test' },
    ]);
  });

  it('5: then the deprecated _matrix._tcp', async () => {
    const dns = fakeDns({}, { '_matrix._tcp.hs.test': [srvRecord('old.test', 7000)] });
    expect(await client(dns).discovery.resolve('hs.test')).toEqual([
      { host: 'old.test', port: 7000, hostHeader: 'hs.test', tlsName: 'hs.test' },
    ]);
    expect(dns.calls).toEqual(['A hs.test', 'SRV _matrix-fed._tcp.hs.test', 'SRV _matrix._tcp.hs.test']);
  });

  it('6: else <host>:8448', async () => {
    const dns = fakeDns({});
    expect(await client(dns).discovery.resolve('hs.test')).toEqual([
      { host: 'hs.test', port: 8448, hostHeader: 'hs.test', tlsName: 'hs.test' },
    ]);
  });

  it('refuses a malformed server name permanently', async () => {
    const err = await client(fakeDns({}))
      .discovery.resolve('bad name:99999')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).permanent).toBe(true);
    expect((err as FederationError).deniedByPolicy).toBe(false);
  });
});

describe('.well-known robustness', () => {
  const dns = () => fakeDns({ 'hs.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] });
  const fallback = [{ host: 'hs.test', port: 8448, hostHeader: 'hs.test', tlsName: 'hs.test' }];

  it('ignores a huge answer (size cap) and falls back', async () => {
    hs.route('GET', WK, { raw: JSON.stringify({ 'm.server': 'delegated.test:1', pad: 'x'.repeat(200 * 1024) }) });
    expect(await client(dns()).discovery.resolve('hs.test')).toEqual(fallback);
    expect(hs.requestsTo(WK)).toHaveLength(1);
  });

  it('ignores a huge chunked answer without Content-Length', async () => {
    hs.route('GET', WK, () => ({ raw: Buffer.alloc(300 * 1024, 0x20), headers: { 'transfer-encoding': 'chunked' } }));
    expect(await client(dns()).discovery.resolve('hs.test')).toEqual(fallback);
  });

  it('gives up on a slow answer after its timeout', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test:1' }, delayMs: 2000 });
    const started = Date.now();
    expect(await client(dns(), { wellKnown: { timeoutMs: 300 } }).discovery.resolve('hs.test')).toEqual(fallback);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it.each([
    ['not JSON', { raw: '{"m.server": ' }],
    ['not an object', { body: ['delegated.test'] }],
    ['m.server missing', { body: { server: 'delegated.test' } }],
    ['m.server not a string', { body: { 'm.server': 42 } }],
    ['m.server not a server name', { body: { 'm.server': 'https://delegated.test/' } }],
    ['a 500', { status: 500, body: { 'm.server': 'delegated.test' } }],
  ])('ignores a malformed answer (%s)', async (_what, answer) => {
    hs.route('GET', WK, answer);
    expect(await client(dns()).discovery.resolve('hs.test')).toEqual(fallback);
  });

  it('follows a redirect, also to another host, through the same checks', async () => {
    hs.route('GET', WK, { status: 302, headers: { location: `https://other.test:${hs.port}/elsewhere` } });
    hs.route('GET', '/elsewhere', { body: { 'm.server': 'delegated.test:8443' } });
    expect(await client(dns()).discovery.resolve('hs.test')).toEqual([
      { host: 'delegated.test', port: 8443, hostHeader: 'delegated.test:8443', tlsName: 'delegated.test' },
    ]);
    expect(hs.requestsTo('/elsewhere')[0]!.sni).toBe('other.test');
  });

  it('stops after a bounded number of redirects', async () => {
    hs.route('GET', WK, { status: 301, headers: { location: WK } });
    expect(await client(dns(), { wellKnown: { maxRedirects: 3 } }).discovery.resolve('hs.test')).toEqual(fallback);
    expect(hs.requestsTo(WK)).toHaveLength(4);
  });

  it('does not follow a redirect to plain http', async () => {
    hs.route('GET', WK, { status: 302, headers: { location: `http://other.test:${hs.port}/elsewhere` } });
    hs.route('GET', '/elsewhere', { body: { 'm.server': 'delegated.test:8443' } });
    expect(await client(dns()).discovery.resolve('hs.test')).toEqual(fallback);
    expect(hs.requestsTo('/elsewhere')).toHaveLength(0);
  });

  it('does not follow a redirect into a denied address', async () => {
    hs.route('GET', WK, { status: 302, headers: { location: `https://internal.test:${hs.port}/elsewhere` } });
    const d = fakeDns({ 'hs.test': ['127.0.0.1'], 'internal.test': ['10.0.0.7'] });
    expect(await client(d).discovery.resolve('hs.test')).toEqual(fallback);
  });
});

describe('.well-known cache', () => {
  it('caches a success for its max-age (bounded), then asks again', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test:1' }, headers: { 'cache-control': 'max-age=600' } });
    const c = client(fakeDns({ 'hs.test': ['127.0.0.1'] }));
    await c.discovery.resolve('hs.test');
    await c.discovery.resolve('HS.test');
    expect(hs.requestsTo(WK)).toHaveLength(1);
    clock += 599_000;
    await c.discovery.resolve('hs.test');
    expect(hs.requestsTo(WK)).toHaveLength(1);
    clock += 2_000;
    await c.discovery.resolve('hs.test');
    expect(hs.requestsTo(WK)).toHaveLength(2);
  });

  it('bounds max-age to 48 hours and defaults to 24 hours', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test:1' }, headers: { 'cache-control': 'max-age=99999999' } });
    const c = client(fakeDns({ 'hs.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }));
    await c.discovery.resolve('hs.test');
    clock += 48 * 3600_000 + 1;
    await c.discovery.resolve('hs.test');
    expect(hs.requestsTo(WK)).toHaveLength(2);
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test:1' } });
    await c.discovery.resolve('other.test');
    clock += 24 * 3600_000 - 1000;
    await c.discovery.resolve('other.test');
    expect(hs.requestsTo(WK)).toHaveLength(3);
    clock += 2000;
    await c.discovery.resolve('other.test');
    expect(hs.requestsTo(WK)).toHaveLength(4);
  });

  it('caches a failure for an hour', async () => {
    hs.route('GET', WK, { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } });
    const c = client(fakeDns({ 'hs.test': ['127.0.0.1'] }));
    await c.discovery.resolve('hs.test');
    await c.discovery.resolve('hs.test');
    expect(hs.requestsTo(WK)).toHaveLength(1);
    hs.route('GET', WK, { body: { 'm.server': '127.0.0.1:4321' } });
    clock += 3600_000 + 1;
    expect((await c.discovery.resolve('hs.test'))[0]!.port).toBe(4321);
    expect(hs.requestsTo(WK)).toHaveLength(2);
  });

  it('keeps a bounded number of entries', async () => {
    hs.route('GET', WK, { body: { 'm.server': '127.0.0.1:4321' } });
    const names = ['a.hs.test', 'b.hs.test', 'c.hs.test', 'd.hs.test'];
    const c = client(fakeDns(Object.fromEntries(names.map((n) => [n, ['127.0.0.1']]))), { wellKnown: { cacheEntries: 2 } });
    for (const n of names) await c.discovery.resolve(n);
    expect(c.discovery.cacheSize).toBe(2);
    await c.discovery.resolve('a.hs.test'); // evicted: asked again
    expect(hs.requestsTo(WK)).toHaveLength(5);
    await c.discovery.resolve('a.hs.test');
    expect(hs.requestsTo(WK)).toHaveLength(5);
  });
});

describe('calls', () => {
  afterEach(() => {
    hs.route('GET', '/ping', { body: { ok: true } });
  });

  it('GETs and POSTs JSON by server name, with Host = server name and no SNI for an IP literal', async () => {
    hs.route('GET', '/ping', { body: { ok: true } });
    hs.route('POST', '/echo', (req) => ({ body: { got: req.body } }));
    const c = client(fakeDns({}));
    const got = await c.getJson(hs.serverName, '/ping', { a: '1 2', b: 'x&y' });
    expect(got).toMatchObject({ status: 200, body: { ok: true } });
    const req = hs.requestsTo('/ping')[0]!;
    expect(req.query).toEqual({ a: '1 2', b: 'x&y' });
    expect(req.headers.host).toBe(hs.serverName);
    expect(req.sni).toBeUndefined();
    const posted = await c.postJson(hs.serverName, '/echo', { n: 1, s: 'é' });
    expect(posted).toMatchObject({ status: 200, body: { got: { n: 1, s: 'é' } } });
    expect(hs.requestsTo('/echo')[0]!.headers['content-type']).toBe('application/json');
  });

  it('reports non-2xx answers as responses, and a non-JSON body as undefined', async () => {
    hs.route('GET', '/nope', { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'no' } });
    hs.route('GET', '/text', { raw: 'hello' });
    const c = client(fakeDns({}));
    expect(await c.getJson(hs.serverName, '/nope')).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    expect(await c.getJson(hs.serverName, '/text')).toMatchObject({ status: 200, body: undefined });
  });

  it('sends SNI and Host of the delegated name while connecting to the SRV target', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'delegated.test' } });
    hs.route('GET', '/ping', { body: { ok: true } });
    const dns = fakeDns(
      { 'hs.test': ['127.0.0.1'], 'target.test': ['127.0.0.1'] },
      { '_matrix-fed._tcp.delegated.test': [srvRecord('target.test', hs.port)] },
    );
    const res = await client(dns).getJson('hs.test', '/ping');
    expect(res.status).toBe(200);
    const req = hs.requestsTo('/ping')[0]!;
    expect(req.sni).toBe('delegated.test');
    expect(req.headers.host).toBe('delegated.test');
  });

  it('verifies TLS by default: a self-signed certificate is refused unless trusted or verification is off', async () => {
    hs.route('GET', '/ping', { body: { ok: true } });
    const untrusted = new HttpFederationClient({ allow: ['127.0.0.1/32'], resolver: fakeDns({}), timeoutMs: 2000 });
    const err = await untrusted.getJson(hs.serverName, '/ping').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect(hs.requestsTo('/ping')).toHaveLength(0);
    const insecure = new HttpFederationClient({ allow: ['127.0.0.1/32'], resolver: fakeDns({}), timeoutMs: 2000, verifyTls: false });
    expect((await insecure.getJson(hs.serverName, '/ping')).status).toBe(200);
  });

  it('checks the certificate against the delegated name', async () => {
    hs.route('GET', WK, { body: { 'm.server': 'not-in-cert.example' } });
    const dns = fakeDns(
      { 'hs.test': ['127.0.0.1'], 'not-in-cert.example': ['127.0.0.1'] },
      { '_matrix-fed._tcp.not-in-cert.example': [srvRecord('hs.test', hs.port)] },
    );
    const err = await client(dns, { allow: ['127.0.0.1/32'] })
      .getJson('hs.test', '/ping')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
  });

  it('times out a slow homeserver (retryable)', async () => {
    hs.route('GET', '/slow', { body: {}, delayMs: 2000 });
    const started = Date.now();
    const err = await client(fakeDns({}), { timeoutMs: 300 })
      .getJson(hs.serverName, '/slow')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).permanent).toBe(false);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('caps the response size', async () => {
    hs.route('GET', '/big', { raw: JSON.stringify({ pad: 'x'.repeat(100_000) }) });
    const err = await client(fakeDns({}), { maxResponseBytes: 10_000 })
      .getJson(hs.serverName, '/big')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
  });

  it('a refused connection is retryable', async () => {
    const err = await client(fakeDns({}))
      .getJson('127.0.0.1:1', '/ping')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).permanent).toBe(false);
  });
});

describe('outbound deny list', () => {
  it('refuses loopback by default, before connecting', async () => {
    hs.route('GET', '/ping', { body: { ok: true } });
    const c = new HttpFederationClient({ ca: hs.cert, resolver: fakeDns({}), timeoutMs: 2000 });
    const err = await c.getJson(hs.serverName, '/ping').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).permanent).toBe(true);
    expect(hs.requests).toHaveLength(0);
  });

  it('refuses a server name that resolves to a private address', async () => {
    const dns = fakeDns({ 'evil.test': ['10.0.0.5', '192.168.1.1', 'fd00::1', '169.254.169.254'] });
    const err = await client(dns)
      .getJson('evil.test:8448', '/ping')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationError);
    expect((err as FederationError).permanent).toBe(true);
    // the outbox leaves such a row for an instance whose policy may allow it
    expect((err as FederationError).deniedByPolicy).toBe(true);
  });

  it('refuses a delegation (.well-known or SRV) that points into a private range', async () => {
    hs.route('GET', WK, { body: { 'm.server': '10.1.2.3:8448' } });
    const err = await client(fakeDns({ 'hs.test': ['127.0.0.1'] }))
      .getJson('hs.test', '/ping')
      .catch((e: unknown) => e);
    expect((err as FederationError).permanent).toBe(true);
    const viaSrv = fakeDns({ 'internal.test': ['172.16.5.5'] }, { '_matrix-fed._tcp.hs.test': [srvRecord('internal.test', 443)] });
    const err2 = await client(viaSrv)
      .getJson('hs.test', '/ping')
      .catch((e: unknown) => e);
    expect((err2 as FederationError).permanent).toBe(true);
  });

  it('skips denied addresses and dials the permitted one it checked (one DNS answer per call: no rebinding)', async () => {
    hs.route('GET', '/ping', { body: { ok: true } });
    let n = 0;
    // First answer: loopback (allowed here) after a private one; any later answer would be private.
    const dns = fakeDns({ 'rebind.hs.test': () => (n++ === 0 ? ['10.9.9.9', '127.0.0.1'] : ['10.9.9.9']) });
    const res = await client(dns).call(`rebind.hs.test:${hs.port}`, 'GET', '/ping');
    expect(res.status).toBe(200);
    expect(res.raw.address).toBe('127.0.0.1');
    expect(dns.calls.filter((c) => c === 'A rebind.hs.test')).toHaveLength(1);
  });

  it('the allow list lets 127.0.0.1 through, and a host name entry lets that name through', async () => {
    hs.route('GET', '/ping', { body: { ok: true } });
    expect((await client(fakeDns({})).getJson(hs.serverName, '/ping')).status).toBe(200);
    const byName = client(fakeDns({ 'hs.test': ['127.0.0.1'] }), { allow: ['hs.test'] });
    expect((await byName.getJson(`hs.test:${hs.port}`, '/ping')).status).toBe(200);
    const otherName = client(fakeDns({ 'other.test': ['127.0.0.1'] }), { allow: ['hs.test'] });
    await expect(otherName.getJson(`other.test:${hs.port}`, '/ping')).rejects.toBeInstanceOf(FederationError);
  });
});
