// SSRF-guarded outbound HTTP (design.md §4 "Outbound rules", §5). Every call to Jira and TeamCity goes
// through a dispatcher made here: its `connect` resolves the host name itself, refuses private, loopback,
// link-local, unique-local, CGNAT, multicast, reserved and cloud-metadata addresses (IP literals and every
// DNS answer alike, IPv4-mapped/NAT64/6to4 forms unwrapped), and then connects to exactly the address it
// checked — there is no second resolution a DNS-rebinding attacker could answer differently.
// Hosts in OUTBOUND_ALLOW_HOSTS (`host` or `host:port`) skip the address check and may use plain http.
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { ConnectionOptions } from 'node:tls';
import { Agent, buildConnector, type Dispatcher } from 'undici';

/** Why an outbound call was refused; `host` is the target's host[:port] (never a full URL, which may carry secrets). */
export type OutboundBlockReason =
  | 'invalid-url'
  | 'scheme'
  | 'userinfo'
  | 'plain-http'
  | 'blocked-address'
  | 'no-address';

export class OutboundBlockedError extends Error {
  override name = 'OutboundBlockedError';
  readonly code = 'OUTBOUND_BLOCKED';
  constructor(
    message: string,
    readonly reason: OutboundBlockReason,
    readonly host: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------
// Address classification

type Rule = readonly [network: string, prefix: number, label: string];

// Order matters only for the label reported (most specific first).
const V4_RULES: readonly Rule[] = [
  ['169.254.169.254', 32, 'cloud metadata'], // AWS, GCP, Azure, OpenStack, DigitalOcean…
  ['169.254.170.2', 32, 'cloud metadata'], // AWS ECS task metadata
  ['100.100.100.200', 32, 'cloud metadata'], // Alibaba Cloud
  ['168.63.129.16', 32, 'cloud metadata'], // Azure WireServer (a public address)
  ['192.0.0.192', 32, 'cloud metadata'], // Oracle Cloud
  ['0.0.0.0', 8, 'unspecified ("this network")'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared address space (CGNAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved (IETF protocol assignments)'],
  ['192.0.2.0', 24, 'reserved (documentation)'],
  ['192.88.99.0', 24, 'reserved (6to4 relay anycast)'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved (benchmarking)'],
  ['198.51.100.0', 24, 'reserved (documentation)'],
  ['203.0.113.0', 24, 'reserved (documentation)'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (incl. broadcast)'],
];

// IPv6 outside 2000::/3 (global unicast) is refused wholesale (::, ::1, fc00::/7, fe80::/10, ff00::/8,
// 100::/64, fec0::/10, IPv4-compatible ::/96 …) except the forms that embed an IPv4 address, which are
// judged by that address. Inside 2000::/3 these special ranges are refused:
const V6_RULES: readonly Rule[] = [
  ['2001::', 23, 'reserved (IETF protocol assignments, incl. Teredo)'],
  ['2001:db8::', 32, 'reserved (documentation)'],
  ['3fff::', 20, 'reserved (documentation)'],
];

function blockList(network: string, prefix: number, family: 'ipv4' | 'ipv6'): BlockList {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return list;
}

const V4_LISTS = V4_RULES.map(([net, prefix, label]) => ({ list: blockList(net, prefix, 'ipv4'), label }));
const V6_LISTS = V6_RULES.map(([net, prefix, label]) => ({ list: blockList(net, prefix, 'ipv6'), label }));
const GLOBAL_UNICAST_V6 = blockList('2000::', 3, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (zone id ignored), or undefined if it is not one. */
export function ipv6Groups(address: string): number[] | undefined {
  const ip = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!isIPv6(ip)) return undefined;
  let text = ip.toLowerCase();
  // A trailing dotted quad becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    const hi = ((o[0]! << 8) | o[1]!).toString(16);
    const lo = ((o[2]! << 8) | o[3]!).toString(16);
    text = `${text.slice(0, dotted.index)}${hi}:${lo}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return groups.length === 8 ? groups : undefined;
}

function v4FromGroups(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/** The IPv4 address embedded in an IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address. */
function embeddedIPv4(g: number[]): { v4: string; form: string } | undefined {
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && g[5] === 0xffff) return { v4: v4FromGroups(g[6]!, g[7]!), form: 'IPv4-mapped' };
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return { v4: v4FromGroups(g[6]!, g[7]!), form: 'IPv4-translated' };
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return { v4: v4FromGroups(g[6]!, g[7]!), form: 'NAT64' };
  if (g[0] === 0x2002) return { v4: v4FromGroups(g[1]!, g[2]!), form: '6to4' };
  return undefined;
}

/**
 * Why `address` (an IPv4 or IPv6 literal, brackets and zone id allowed) must not be reached, or
 * undefined when it is a public unicast address. Anything that is not an IP address is refused too.
 */
export function blockedAddressReason(address: string): string | undefined {
  const ip = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIPv4(ip)) return V4_LISTS.find((r) => r.list.check(ip, 'ipv4'))?.label;
  const groups = ipv6Groups(ip);
  if (!groups) return 'not an IP address';
  const embedded = embeddedIPv4(groups);
  if (embedded) {
    const inner = blockedAddressReason(embedded.v4);
    return inner === undefined ? undefined : `${embedded.form} ${inner}`;
  }
  if (groups.every((x) => x === 0)) return 'unspecified';
  if (groups.slice(0, 7).every((x) => x === 0) && groups[7] === 1) return 'loopback';
  if (!GLOBAL_UNICAST_V6.check(ip, 'ipv6')) {
    const first = groups[0]!;
    if ((first & 0xfe00) === 0xfc00) return first === 0xfd00 && groups[1] === 0xec2 ? 'cloud metadata' : 'unique-local';
    if ((first & 0xffc0) === 0xfe80) return 'link-local';
    if ((first & 0xff00) === 0xff00) return 'multicast';
    return 'reserved';
  }
  return V6_LISTS.find((r) => r.list.check(ip, 'ipv6'))?.label;
}

export function isBlockedAddress(address: string): boolean {
  return blockedAddressReason(address) !== undefined;
}

// ---------------------------------------------------------------------------------------------------
// Allow-list (OUTBOUND_ALLOW_HOSTS: lowercased `host` or `host:port`, IPv6 as `[addr]` or `[addr]:port`)

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/** True if `hostname` (brackets optional for IPv6) on `port` is allow-listed, as a bare host or as host:port. */
export function isAllowListed(allowHosts: readonly string[], hostname: string, port: number): boolean {
  if (allowHosts.length === 0) return false;
  const bare = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const names = isIPv6(bare) ? [bare, `[${bare}]`] : [bare];
  const candidates = new Set<string>();
  for (const n of names) {
    candidates.add(n);
    candidates.add(`${n}:${port}`);
  }
  return allowHosts.some((entry) => candidates.has(entry.trim().toLowerCase()));
}

export interface OutboundUrlOptions {
  allowHosts: readonly string[];
  /** Plain http for allow-listed hosts (design.md §4); default true. False → https everywhere. Never widens to other hosts. */
  allowHttp?: boolean;
}

/**
 * Validates a URL the app is about to call (a TeamCity server, a Jira site): http(s) only, no userinfo,
 * https unless the host is allow-listed, and IP literals that are not public refused unless allow-listed.
 * DNS names are checked again at connect time by the dispatcher. Returns the parsed URL.
 */
export function assertOutboundUrl(url: string | URL, opts: OutboundUrlOptions): URL {
  let parsed: URL;
  try {
    parsed = new URL(typeof url === 'string' ? url : url.href);
  } catch {
    throw new OutboundBlockedError('Outbound URL is not a valid absolute URL', 'invalid-url', '');
  }
  const host = parsed.host;
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new OutboundBlockedError(`Outbound URL scheme ${parsed.protocol} is not allowed (https only)`, 'scheme', host);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new OutboundBlockedError(`Outbound URL for ${host} must not contain credentials (user:password@)`, 'userinfo', host);
  }
  const port = parsed.port === '' ? defaultPort(parsed.protocol) : Number(parsed.port);
  const allowed = isAllowListed(opts.allowHosts, parsed.hostname, port);
  if (parsed.protocol === 'http:' && !(allowed && (opts.allowHttp ?? true))) {
    throw new OutboundBlockedError(
      `Plain http to ${host} is not allowed: use https (http is only for hosts in OUTBOUND_ALLOW_HOSTS)`,
      'plain-http',
      host,
    );
  }
  if (!allowed && isIP(parsed.hostname.replace(/^\[|\]$/g, '')) !== 0) {
    const reason = blockedAddressReason(parsed.hostname);
    if (reason !== undefined) {
      throw new OutboundBlockedError(`Outbound call to ${host} refused: ${reason} address (not in OUTBOUND_ALLOW_HOSTS)`, 'blocked-address', host);
    }
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------------
// The dispatcher

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address; the default is `dns.lookup(…, { all: true })`. */
export type OutboundLookup = (hostname: string) => Promise<ResolvedAddress[]>;

export interface OutboundDispatcherOptions {
  /** OUTBOUND_ALLOW_HOSTS (`host` or `host:port`, lowercase). */
  allowHosts: readonly string[];
  /** DNS + TCP (+ TLS) connect timeout; default 10 s. */
  connectTimeoutMs?: number;
  /** Time to the response headers; default 30 s. */
  headersTimeoutMs?: number;
  /** Max idle time between body chunks; default 30 s. */
  bodyTimeoutMs?: number;
  /** Idle keep-alive socket lifetime; default 30 s. */
  keepAliveTimeoutMs?: number;
  /** Largest response body accepted; default 10 MiB. */
  maxResponseBytes?: number;
  /** Connections per origin; default 8. */
  connectionsPerOrigin?: number;
  /** Refuse plain http to hosts that are not allow-listed (default true, design.md §4). */
  requireHttps?: boolean;
  /** Extra TLS options (e.g. a private CA for an on-prem TeamCity). */
  tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'minVersion'>;
  /** Name resolution (tests); default dns.lookup with all addresses. */
  lookup?: OutboundLookup;
}

const defaultLookup: OutboundLookup = async (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

const dispatcherAllowHosts = new WeakMap<Dispatcher, readonly string[]>();

/** The allow-list a dispatcher from `createOutboundDispatcher` was made with (undefined for any other dispatcher). */
export function outboundAllowHostsOf(dispatcher: Dispatcher): readonly string[] | undefined {
  return dispatcherAllowHosts.get(dispatcher);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * An undici Agent for all outbound HTTP. Its connector resolves the name, refuses non-public addresses
 * (unless the host is allow-listed) and connects to the checked address itself, keeping the original
 * host name for TLS SNI and certificate verification.
 */
export function createOutboundDispatcher(opts: OutboundDispatcherOptions): Dispatcher {
  const allowHosts = opts.allowHosts.map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const requireHttps = opts.requireHttps ?? true;
  const lookup = opts.lookup ?? defaultLookup;
  const base = buildConnector({ timeout: connectTimeoutMs, ...(opts.tls ?? {}) });

  async function addressesFor(hostname: string, protocol: string, port: number, host: string): Promise<string[]> {
    const allowed = isAllowListed(allowHosts, hostname, port);
    if (requireHttps && protocol !== 'https:' && !allowed) {
      throw new OutboundBlockedError(`Plain http to ${host} is not allowed (only hosts in OUTBOUND_ALLOW_HOSTS)`, 'plain-http', host);
    }
    if (isIP(hostname) !== 0) {
      const reason = allowed ? undefined : blockedAddressReason(hostname);
      if (reason !== undefined) {
        throw new OutboundBlockedError(`Outbound call to ${host} refused: ${reason} address (not in OUTBOUND_ALLOW_HOSTS)`, 'blocked-address', host);
      }
      return [hostname];
    }
    const resolved = await withTimeout(lookup(hostname), connectTimeoutMs, `DNS lookup of ${hostname} timed out`);
    const addresses = [...new Set(resolved.map((r) => r.address))];
    if (addresses.length === 0) throw new OutboundBlockedError(`${hostname} did not resolve to any address`, 'no-address', host);
    if (!allowed) {
      // One non-public answer is enough to refuse: a public name has no business resolving there.
      for (const a of addresses) {
        const reason = blockedAddressReason(a);
        if (reason !== undefined) {
          throw new OutboundBlockedError(
            `Outbound call to ${host} refused: it resolves to a ${reason} address (not in OUTBOUND_ALLOW_HOSTS)`,
            'blocked-address',
            host,
          );
        }
      }
    }
    return addresses;
  }

  const connect: buildConnector.connector = (options, callback) => {
    const protocol = options.protocol;
    const hostname = options.hostname.replace(/^\[|\]$/g, '');
    const port = options.port ? Number(options.port) : defaultPort(protocol);
    const host = options.host ?? `${hostname}:${port}`;
    const attempt = (addresses: string[], i: number): void => {
      base(
        {
          ...options,
          hostname: addresses[i]!,
          host,
          // SNI and certificate checks against the name, not the address we connect to.
          ...(options.servername === undefined && isIP(hostname) === 0 ? { servername: hostname } : {}),
        },
        (...args) => {
          if (args[0] !== null && i + 1 < addresses.length) {
            attempt(addresses, i + 1);
            return;
          }
          callback(...args);
        },
      );
    };
    addressesFor(hostname, protocol, port, host).then(
      (addresses) => attempt(addresses, 0),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
    );
  };

  const agent = new Agent({
    connect,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    maxResponseSize: opts.maxResponseBytes ?? 10 * 1024 * 1024,
    connections: opts.connectionsPerOrigin ?? 8,
  });
  dispatcherAllowHosts.set(agent, allowHosts);
  return agent;
}
