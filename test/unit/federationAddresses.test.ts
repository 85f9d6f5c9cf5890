// The outbound address policy and server-name parsing, without any network.
import { describe, expect, it } from 'vitest';
import { AddressPolicy, embeddedIpv4, ipv6Bytes, parseCidr } from '../../src/federation/addresses.js';
import { parseServerName } from '../../src/federation/discovery.js';

describe('AddressPolicy (default deny list)', () => {
  const policy = new AddressPolicy();

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local (metadata)'],
    ['100.64.0.1', 'CGNAT'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified v6'],
    ['::1', 'loopback v6'],
    ['fc00::1', 'ULA'],
    ['fd12:3456::1', 'ULA'],
    ['fe80::1', 'link-local v6'],
    ['ff02::1', 'multicast v6'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:8.8.8.8', 'IPv4-mapped public (mapped forms are refused outright)'],
    ['::ffff:7f00:1', 'IPv4-mapped in hex'],
    ['not-an-ip', 'garbage'],
  ])('refuses %s (%s)', (ip) => {
    expect(policy.permits(ip)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2001:4860:4860::8888', '2a00:1450::1'])('permits public %s', (ip) => {
    expect(policy.permits(ip)).toBe(true);
  });
});

describe('AddressPolicy: IPv6 forms that carry an IPv4 address', () => {
  const policy = new AddressPolicy();

  it.each([
    ['64:ff9b::a9fe:a9fe', 'NAT64 of 169.254.169.254 (metadata)'],
    ['64:ff9b::169.254.169.254', 'NAT64, dotted tail'],
    ['64:ff9b::7f00:1', 'NAT64 of 127.0.0.1'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['64:ff9b:1::8.8.8.8', 'local-use NAT64 (refused whatever it embeds)'],
    ['2002:7f00:1::1', '6to4 of 127.0.0.1'],
    ['2002:a9fe:a9fe::', '6to4 of 169.254.169.254'],
    ['2002:c0a8:101:1::5', '6to4 of 192.168.1.1'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo (refused outright)'],
    ['2001::1', 'Teredo prefix'],
    ['::7f00:1', 'IPv4-compatible 127.0.0.1'],
    ['::127.0.0.1', 'IPv4-compatible, dotted'],
    ['::a9fe:a9fe', 'IPv4-compatible 169.254.169.254'],
    ['::0.0.0.2', 'IPv4-compatible 0.0.0.2'],
  ])('refuses %s (%s)', (ip) => {
    expect(policy.permits(ip)).toBe(false);
  });

  it.each(['64:ff9b::808:808', '64:ff9b::8.8.8.8', '2002:808:808::1', '::808:808'])('permits %s, whose embedded IPv4 is public', (ip) => {
    expect(policy.permits(ip)).toBe(true);
  });

  it('an IPv4 allow-list entry does not let the same address through wrapped in IPv6', () => {
    const allowing = new AddressPolicy(['127.0.0.1/32']);
    expect(allowing.permits('127.0.0.1')).toBe(true);
    for (const ip of ['64:ff9b::7f00:1', '2002:7f00:1::1', '::7f00:1']) expect(allowing.permits(ip)).toBe(false);
  });

  it('extracts the embedded address of each form, and nothing from plain IPv6', () => {
    expect(embeddedIpv4('64:ff9b::a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedIpv4('2002:7f00:1::1')).toBe('127.0.0.1');
    expect(embeddedIpv4('::7f00:1')).toBe('127.0.0.1');
    expect(embeddedIpv4('64:ff9b::1.2.3.4')).toBe('1.2.3.4');
    expect(embeddedIpv4('2001:4860:4860::8888')).toBeUndefined();
    expect(embeddedIpv4('64:ff9b:0:1::1')).toBeUndefined();
    expect(embeddedIpv4('1.2.3.4')).toBeUndefined();
  });

  it('parses IPv6 literals to bytes', () => {
    expect(Buffer.from(ipv6Bytes('::1')!).toString('hex')).toBe('00000000000000000000000000000001');
    expect(Buffer.from(ipv6Bytes('fe80::1%eth0')!).toString('hex')).toBe('fe800000000000000000000000000001');
    expect(Buffer.from(ipv6Bytes('1:2:3:4:5:6:7:8')!).toString('hex')).toBe('00010002000300040005000600070008');
    expect(Buffer.from(ipv6Bytes('::ffff:1.2.3.4')!).toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipv6Bytes('1.2.3.4')).toBeUndefined();
    expect(ipv6Bytes('nonsense')).toBeUndefined();
  });
});

describe('AddressPolicy allow list', () => {
  it('lets a CIDR through and nothing around it', () => {
    const policy = new AddressPolicy(['127.0.0.1/32']);
    expect(policy.permits('127.0.0.1')).toBe(true);
    expect(policy.permits('127.0.0.2')).toBe(false);
    expect(policy.permits('10.0.0.1')).toBe(false);
  });

  it('accepts bare addresses, wider ranges and IPv6 ranges', () => {
    const policy = new AddressPolicy(['10.0.0.0/8', '::1', 'fd00::/8']);
    expect(policy.permits('10.200.0.1')).toBe(true);
    expect(policy.permits('::1')).toBe(true);
    expect(policy.permits('fd00::5')).toBe(true);
    expect(policy.permits('192.168.0.1')).toBe(false);
  });

  it('lets a host name through whatever it resolves to, but not other names resolving there', () => {
    const policy = new AddressPolicy(['hs.internal']);
    expect(policy.permits('10.0.0.5', 'hs.internal')).toBe(true);
    expect(policy.permits('10.0.0.5', 'HS.Internal.')).toBe(true);
    expect(policy.permits('10.0.0.5', 'evil.example')).toBe(false);
    expect(policy.permits('10.0.0.5')).toBe(false);
  });

  it('refuses malformed entries instead of ignoring them', () => {
    expect(() => new AddressPolicy(['10.0.0.0/33'])).toThrow(/allow list/);
    expect(() => new AddressPolicy(['http://x'])).toThrow(/allow list/);
  });

  it('parses CIDRs strictly', () => {
    expect(parseCidr('127.0.0.1/32')).toEqual({ address: '127.0.0.1', prefix: 32, family: 'ipv4' });
    expect(parseCidr('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' });
    expect(parseCidr('1.2.3.4/x')).toBeUndefined();
    expect(parseCidr('1.2.3.4/8/9')).toBeUndefined();
    expect(parseCidr('example.org')).toBeUndefined();
  });
});

describe('parseServerName', () => {
  it.each([
    ['example.org', { host: 'example.org', port: undefined, ip: false }],
    ['example.org:8448', { host: 'example.org', port: 8448, ip: false }],
    ['1.2.3.4', { host: '1.2.3.4', port: undefined, ip: true }],
    ['1.2.3.4:443', { host: '1.2.3.4', port: 443, ip: true }],
    ['[::1]', { host: '::1', port: undefined, ip: true }],
    ['[2001:db8::1]:8080', { host: '2001:db8::1', port: 8080, ip: true }],
    ['localhost', { host: 'localhost', port: undefined, ip: false }],
  ])('parses %s', (text, expected) => {
    expect(parseServerName(text)).toMatchObject({ ...expected, text });
  });

  it.each([
    '',
    'example.org:',
    'example.org:0',
    'example.org:65536',
    'example.org:8448:1',
    '::1',
    '[::1',
    '[example.org]',
    'exa mple.org',
    'user@example.org',
    'example.org/path',
    '1.2.3',
    '-bad.org',
    'a'.repeat(300),
  ])('refuses %s', (text) => {
    expect(parseServerName(text)).toBeUndefined();
  });
});

describe('DNS deadlines', () => {
  it('withTimeout rejects a look-up that never answers, and passes a prompt one through', async () => {
    const { withTimeout } = await import('../../src/federation/transport.js');
    await expect(withTimeout(new Promise(() => {}), 50, 'DNS look-up')).rejects.toThrow(/timed out after 50 ms/);
    await expect(withTimeout(Promise.resolve(['1.2.3.4']), 50, 'DNS look-up')).resolves.toEqual(['1.2.3.4']);
  });

  it('the system resolver answers for localhost (no network needed)', async () => {
    const { systemResolver } = await import('../../src/federation/transport.js');
    const addrs = await systemResolver.lookup('localhost');
    expect(addrs.some((a) => a === '127.0.0.1' || a === '::1')).toBe(true);
  });
});
