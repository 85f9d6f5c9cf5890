// Outbound address policy: which IP addresses Tessera may connect to when it calls a homeserver.
// The check runs on the address we actually connect to (we resolve, check, then dial the IP), so a
// DNS answer that changes between check and connect (rebinding) cannot slip a private address in.
import { BlockList, isIP } from 'node:net';

/** Ranges no homeserver lives in; calling them would let a client make us probe the operator's network. */
export const DEFAULT_DENIED_CIDRS: readonly string[] = [
  // IPv4
  '0.0.0.0/8', // "this network", unspecified
  '10.0.0.0/8', // private
  '100.64.0.0/10', // carrier-grade NAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local (cloud metadata endpoints live here)
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation
  '203.0.113.0/24', // documentation
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  // IPv6
  '::/128', // unspecified
  '::1/128', // loopback
  '64:ff9b:1::/48', // local-use NAT64
  '100::/64', // discard
  '2001::/32', // Teredo: tunnels to an IPv4 address we cannot see (obfuscated in the low bits)
  '2001:db8::/32', // documentation
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // deprecated site-local
  'ff00::/8', // multicast
];

const MAPPED = new BlockList();
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** Parses an IPv6 literal (optionally with a dotted IPv4 tail and a zone) into 16 bytes; undefined when malformed. */
export function ipv6Bytes(ip: string): Uint8Array | undefined {
  let text = ip.split('%')[0]!;
  if (isIP(text) !== 6) return undefined;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // A dotted IPv4 tail is two 16-bit groups.
    const o = last.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const halves = text.split('::');
  const parse = (part: string | undefined): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(halves[0]);
  const right = parse(halves[1]);
  const groups = halves.length === 1 ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

const dotted = (b: Uint8Array, at: number): string => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/**
 * The IPv4 address an IPv6 address carries when packets to it end up at that IPv4 host: NAT64
 * (64:ff9b::/96, RFC 6052), 6to4 (2002::/16, RFC 3056) and IPv4-compatible (::/96, deprecated).
 * (IPv4-mapped ::ffff:0:0/96 is refused outright; Teredo 2001::/32 is on the deny list.)
 */
export function embeddedIpv4(ip: string): string | undefined {
  const b = ipv6Bytes(ip);
  if (!b) return undefined;
  const zeros = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return dotted(b, 12);
  if (b[0] === 0x20 && b[1] === 0x02) return dotted(b, 2);
  if (zeros(0, 12)) return dotted(b, 12);
  return undefined;
}

export interface CidrRange {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128); undefined when malformed. */
export function parseCidr(text: string): CidrRange | undefined {
  const [addr, bits, ...rest] = text.trim().split('/');
  if (addr === undefined || rest.length > 0) return undefined;
  const version = isIP(addr);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return undefined;
  return { address: addr, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A DNS name as a server name or allow-list entry may hold it (no IP literal, no port). */
const HOSTNAME = /^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isHostname(text: string): boolean {
  return HOSTNAME.test(text);
}

function blockListOf(ranges: CidrRange[]): BlockList {
  const list = new BlockList();
  for (const r of ranges) list.addSubnet(r.address, r.prefix, r.family);
  return list;
}

export class AddressPolicy {
  private readonly denied: BlockList;
  private readonly allowed: BlockList;
  private readonly allowedHosts: Set<string>;

  /**
   * `allow`: host names or CIDR ranges exempt from the deny list (test deployments: `127.0.0.1/32`).
   * Throws on a malformed entry, so a typo cannot silently widen or narrow the policy.
   */
  constructor(allow: readonly string[] = [], deny: readonly string[] = DEFAULT_DENIED_CIDRS) {
    const allowRanges: CidrRange[] = [];
    this.allowedHosts = new Set();
    for (const entry of allow) {
      const range = parseCidr(entry);
      if (range) allowRanges.push(range);
      else if (isHostname(entry.trim())) this.allowedHosts.add(normaliseHost(entry));
      else throw new Error(`federation allow list: ${JSON.stringify(entry)} is neither a host name nor a CIDR range`);
    }
    this.allowed = blockListOf(allowRanges);
    this.denied = blockListOf(
      deny.map((d) => {
        const r = parseCidr(d);
        if (!r) throw new Error(`federation deny list: bad CIDR ${d}`);
        return r;
      }),
    );
  }

  /** Whether we may connect to `ip`, reached by resolving `host` (undefined when dialling an IP literal). */
  permits(ip: string, host?: string): boolean {
    const version = isIP(ip);
    if (version === 0) return false;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (host !== undefined && this.allowedHosts.has(normaliseHost(host))) return true;
    if (this.allowed.check(ip, family)) return true;
    if (this.denied.check(ip, family)) return false;
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) would reach any IPv4 address, private ones included: refused
    // outright. (It has its own list: in one BlockList, Node matches plain IPv4 against a mapped range.)
    if (family === 'ipv6' && MAPPED.check(ip, 'ipv6')) return false;
    // NAT64, 6to4 and IPv4-compatible addresses deliver to the IPv4 address inside them: it must pass
    // the IPv4 deny list too (64:ff9b::a9fe:a9fe is the metadata endpoint 169.254.169.254). The allow
    // list is not consulted for it: an operator allows the forms they dial, not every wrapping of them.
    if (family === 'ipv6') {
      const inner = embeddedIpv4(ip);
      if (inner !== undefined && this.denied.check(inner, 'ipv4')) return false;
    }
    return true;
  }
}

function normaliseHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}
