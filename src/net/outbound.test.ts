import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { request, type Dispatcher } from 'undici';
import {
  assertOutboundUrl,
  blockedAddressReason,
  createOutboundDispatcher,
  isAllowListed,
  outboundAllowHostsOf,
  OutboundBlockedError,
  type ResolvedAddress,
} from './outbound.ts';

interface Loopback {
  port: number;
  received: Array<{ method: string; url: string; host: string }>;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 that records every request it gets. */
async function loopbackServer(handler?: (req: IncomingMessage) => 'hang' | undefined): Promise<Loopback> {
  const received: Loopback['received'] = [];
  const server: Server = createServer((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '' });
    if (handler?.(req) === 'hang') return;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from loopback');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function get(url: string, dispatcher: Dispatcher): Promise<{ status: number; text: string; host?: string }> {
  const res = await request(url, { dispatcher });
  return { status: res.statusCode, text: await res.body.text() };
}

function isBlocked(reason?: OutboundBlockedError['reason']) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof OutboundBlockedError, `expected OutboundBlockedError, got ${String(err)}`);
    if (reason) assert.equal(err.reason, reason, err.message);
    assert.equal(err.code, 'OUTBOUND_BLOCKED');
    return true;
  };
}

void test('blockedAddressReason: private, loopback, link-local, ULA, CGNAT, multicast, reserved, metadata and embedded IPv4 forms', () => {
  const blocked: Array<[string, RegExp]> = [
    ['127.0.0.1', /loopback/],
    ['127.255.255.254', /loopback/],
    ['10.1.2.3', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['169.254.169.254', /cloud metadata/],
    ['169.254.170.2', /cloud metadata/],
    ['169.254.1.1', /link-local/],
    ['100.64.0.1', /CGNAT/],
    ['100.127.255.255', /CGNAT/],
    ['100.100.100.200', /cloud metadata/],
    ['168.63.129.16', /cloud metadata/],
    ['0.0.0.0', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['240.0.0.1', /reserved/],
    ['255.255.255.255', /reserved/],
    ['192.0.2.10', /documentation/],
    ['198.18.0.1', /benchmarking/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['[::1]', /loopback/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['fc00::1', /unique-local/],
    ['fd12:3456::1', /unique-local/],
    ['fd00:ec2::254', /cloud metadata/],
    ['ff02::1', /multicast/],
    ['::ffff:127.0.0.1', /IPv4-mapped loopback/],
    ['::ffff:7f00:1', /IPv4-mapped loopback/],
    ['::ffff:169.254.169.254', /IPv4-mapped cloud metadata/],
    ['::ffff:10.0.0.1', /IPv4-mapped private/],
    ['64:ff9b::a00:1', /NAT64 private/],
    ['2002:c0a8:101::1', /6to4 private/],
    ['::127.0.0.1', /reserved/],
    ['2001:db8::1', /documentation/],
    ['2001::1', /Teredo/],
    ['100::1', /reserved/],
    ['fec0::1', /reserved/],
    ['not-an-ip', /not an IP/],
  ];
  for (const [address, want] of blocked) {
    const reason = blockedAddressReason(address);
    assert.ok(reason !== undefined && want.test(reason), `${address}: ${String(reason)}`);
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '104.192.141.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001::1', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
    assert.equal(blockedAddressReason(address), undefined, address);
  }
});

void test('isAllowListed: bare host matches any port, host:port only that port, IPv6 in brackets, case-insensitive', () => {
  const allow = ['127.0.0.1:8111', 'tc.local', '[::1]:9000', 'jira.example:443'];
  assert.equal(isAllowListed(allow, '127.0.0.1', 8111), true);
  assert.equal(isAllowListed(allow, '127.0.0.1', 8112), false);
  assert.equal(isAllowListed(allow, 'TC.Local', 1234), true);
  assert.equal(isAllowListed(allow, 'tc.local.', 80), true);
  assert.equal(isAllowListed(allow, '::1', 9000), true);
  assert.equal(isAllowListed(allow, '[::1]', 9000), true);
  assert.equal(isAllowListed(allow, '::1', 9001), false);
  assert.equal(isAllowListed(allow, 'jira.example', 443), true);
  assert.equal(isAllowListed(allow, 'jira.example', 80), false);
  assert.equal(isAllowListed([], '127.0.0.1', 80), false);
});

void test('assertOutboundUrl: https only unless allow-listed, no userinfo, http(s) schemes only, private literals refused', () => {
  const allowHosts = ['127.0.0.1:8111', 'tc.internal'];
  assert.equal(assertOutboundUrl('https://acme.atlassian.net/rest', { allowHosts }).host, 'acme.atlassian.net');
  assert.equal(assertOutboundUrl(new URL('https://tc.example.com:8443/'), { allowHosts }).port, '8443');
  assert.equal(assertOutboundUrl('http://127.0.0.1:8111/app', { allowHosts }).href, 'http://127.0.0.1:8111/app');
  assert.equal(assertOutboundUrl('http://tc.internal:8080/', { allowHosts }).hostname, 'tc.internal');

  assert.throws(() => assertOutboundUrl('http://tc.example.com/', { allowHosts }), isBlocked('plain-http'));
  assert.throws(() => assertOutboundUrl('http://127.0.0.1:9999/', { allowHosts }), isBlocked('plain-http'));
  assert.throws(() => assertOutboundUrl('http://127.0.0.1:8111/', { allowHosts, allowHttp: false }), isBlocked('plain-http'));
  assert.throws(() => assertOutboundUrl('ftp://tc.example.com/', { allowHosts }), isBlocked('scheme'));
  assert.throws(() => assertOutboundUrl('file:///etc/passwd', { allowHosts }), isBlocked('scheme'));
  assert.throws(() => assertOutboundUrl('not a url', { allowHosts }), isBlocked('invalid-url'));
  assert.throws(() => assertOutboundUrl('https://[::1]/', { allowHosts }), isBlocked('blocked-address'));
  assert.throws(() => assertOutboundUrl('https://169.254.169.254/latest/meta-data', { allowHosts }), isBlocked('blocked-address'));
  assert.throws(() => assertOutboundUrl('https://10.0.0.5/', { allowHosts }), isBlocked('blocked-address'));
  assert.throws(() => assertOutboundUrl('https://0x7f000001/', { allowHosts }), isBlocked('blocked-address'));

  // Credentials in the URL are refused, and never echoed in the error.
  assert.throws(
    () => assertOutboundUrl('https://admin:s3cr3t-pa55@tc.example.com/?token=abcdef', { allowHosts }),
    (err: unknown) => {
      isBlocked('userinfo')(err);
      const e = err as OutboundBlockedError;
      assert.doesNotMatch(e.message, /s3cr3t|admin|abcdef/);
      assert.equal(e.host, 'tc.example.com');
      return true;
    },
  );
});

void test('dispatcher refuses loopback, private, link-local, metadata, mapped and localhost targets before connecting', async () => {
  const server = await loopbackServer();
  const dispatcher = createOutboundDispatcher({ allowHosts: [] });
  try {
    const p = server.port;
    // https so that the refusal is about the address (plain http is refused earlier, tested below).
    const targets: Array<[string, RegExp]> = [
      [`https://127.0.0.1:${p}/`, /loopback/],
      [`https://[::1]:${p}/`, /loopback/],
      [`https://[::ffff:127.0.0.1]:${p}/`, /IPv4-mapped loopback/],
      [`https://localhost:${p}/`, /resolves to a loopback/],
      ['https://10.20.30.40/', /private/],
      ['https://192.168.0.1/', /private/],
      ['https://172.16.5.4/', /private/],
      ['https://100.64.0.1/', /CGNAT/],
      ['https://169.254.169.254/latest/meta-data/', /cloud metadata/],
      ['https://[fd00:ec2::254]/', /cloud metadata/],
      ['https://[fe80::1]/', /link-local/],
      ['https://0.0.0.0/', /unspecified/],
      ['https://224.0.0.1/', /multicast/],
    ];
    for (const [url, reason] of targets) {
      await assert.rejects(get(url, dispatcher), (err: unknown) => {
        isBlocked('blocked-address')(err);
        assert.match((err as Error).message, reason, url);
        assert.match((err as Error).message, /OUTBOUND_ALLOW_HOSTS/);
        return true;
      });
    }
    assert.deepEqual(server.received, [], 'nothing reached the loopback server');
  } finally {
    await dispatcher.close();
    await server.close();
  }
});

void test('allow-listed 127.0.0.1:PORT is reached over real HTTP; other ports and plain http elsewhere are refused', async () => {
  const server = await loopbackServer();
  const other = await loopbackServer();
  const dispatcher = createOutboundDispatcher({ allowHosts: [` 127.0.0.1:${server.port} `] });
  try {
    assert.deepEqual(outboundAllowHostsOf(dispatcher), [`127.0.0.1:${server.port}`]);
    const r = await get(`http://127.0.0.1:${server.port}/app/rest/server`, dispatcher);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'hello from loopback');
    assert.deepEqual(server.received.map((x) => x.url), ['/app/rest/server']);

    // Same address, a port that is not allow-listed: refused (http first, then the address over https).
    await assert.rejects(get(`http://127.0.0.1:${other.port}/`, dispatcher), isBlocked('plain-http'));
    await assert.rejects(get(`https://127.0.0.1:${other.port}/`, dispatcher), isBlocked('blocked-address'));
    // Plain http to a public host that is not allow-listed is refused without any DNS or connection.
    await assert.rejects(get('http://tc.example.com/', dispatcher), isBlocked('plain-http'));
    assert.deepEqual(other.received, []);
  } finally {
    await dispatcher.close();
    await server.close();
    await other.close();
  }
});

void test('bare allow-listed host matches any port', async () => {
  const server = await loopbackServer();
  const dispatcher = createOutboundDispatcher({ allowHosts: ['127.0.0.1'] });
  try {
    assert.equal((await get(`http://127.0.0.1:${server.port}/x`, dispatcher)).status, 200);
    assert.equal(server.received.length, 1);
  } finally {
    await dispatcher.close();
    await server.close();
  }
});

void test('a name is resolved once by the guard and the checked address is the one connected to (no second lookup)', async () => {
  const server = await loopbackServer();
  const lookups: string[] = [];
  const answers: Record<string, ResolvedAddress[]> = {
    // `.test` names do not exist in DNS: if anything resolved them again, the request would fail.
    'tc.test': [{ address: '127.0.0.1', family: 4 }],
    'rebind.test': [{ address: '127.0.0.1', family: 4 }],
    'mixed.test': [{ address: '8.8.8.8', family: 4 }, { address: '10.0.0.7', family: 4 }],
    'metadata.test': [{ address: '169.254.169.254', family: 4 }],
    'empty.test': [],
  };
  const dispatcher = createOutboundDispatcher({
    allowHosts: [`tc.test:${server.port}`],
    lookup: async (hostname) => {
      lookups.push(hostname);
      return answers[hostname] ?? [];
    },
  });
  try {
    const r = await get(`http://tc.test:${server.port}/ok`, dispatcher);
    assert.equal(r.status, 200);
    assert.deepEqual(server.received, [{ method: 'GET', url: '/ok', host: `tc.test:${server.port}` }], 'Host header keeps the name');
    assert.deepEqual(lookups, ['tc.test']);

    // Not allow-listed: every answer is checked; one non-public answer refuses the whole name.
    await assert.rejects(get(`https://rebind.test:${server.port}/`, dispatcher), isBlocked('blocked-address'));
    await assert.rejects(get('https://mixed.test/', dispatcher), (err: unknown) => {
      isBlocked('blocked-address')(err);
      assert.match((err as Error).message, /private/);
      return true;
    });
    await assert.rejects(get('https://metadata.test/', dispatcher), isBlocked('blocked-address'));
    await assert.rejects(get('https://empty.test/', dispatcher), isBlocked('no-address'));
    assert.equal(server.received.length, 1, 'refused names never reached the server');
  } finally {
    await dispatcher.close();
    await server.close();
  }
});

void test('headers timeout: a server that never answers fails the request quickly', async () => {
  const server = await loopbackServer(() => 'hang');
  const dispatcher = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${server.port}`], headersTimeoutMs: 200 });
  try {
    const started = Date.now();
    await assert.rejects(get(`http://127.0.0.1:${server.port}/slow`, dispatcher), (err: unknown) => {
      assert.match((err as Error).name, /HeadersTimeoutError/);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  } finally {
    await dispatcher.close().catch(() => undefined);
    await server.close();
  }
});

// Self-signed test certificate for the name `tc.test` only (valid 2000–2100; generated with openssl for this test).
const TC_TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXqfcBl4/Se2uJeul
Vng+IWd/oujeT0JO125Zv/jUTouhRANCAATjZHSYuNbS/hihJ2nyN0GTIfmR8cLW
iBKX/vhJGp+xCMSXLI2BBsAF8TxQWFs/AfVKeSUM7Y2bSbIoRsjf7X6X
-----END PRIVATE KEY-----
`;
const TC_TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBVjCB/qADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB3RjLnRlc3Qw
IBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBIxEDAOBgNVBAMMB3Rj
LnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATjZHSYuNbS/hihJ2nyN0GT
IfmR8cLWiBKX/vhJGp+xCMSXLI2BBsAF8TxQWFs/AfVKeSUM7Y2bSbIoRsjf7X6X
o0MwQTAMBgNVHRMBAf8EAjAAMBIGA1UdEQQLMAmCB3RjLnRlc3QwHQYDVR0OBBYE
FNQ8riyD5P+tb10ZvvVMlmm2mjhAMAoGCCqGSM49BAMCA0cAMEQCIAW5MJSnHo9w
VQ6ESdOZMyb50TzWUZjHbN5m9bWuQDaoAiAUu9J+uXmg/RHiO+lh7J8PSN6Kx+9q
aAZA8loc+JzaPA==
-----END CERTIFICATE-----
`;

void test('https: connects to the checked address but verifies the certificate (and sends SNI) for the host name', async () => {
  const seen: Array<string | undefined> = [];
  const server = createHttpsServer({ key: TC_TEST_KEY, cert: TC_TEST_CERT }, (req, res) => {
    res.end(`tls ok ${req.headers.host}`);
  });
  server.on('secureConnection', (socket: { servername?: string | false }) => seen.push(socket.servername || undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const dispatcher = createOutboundDispatcher({
    allowHosts: [`tc.test:${port}`, `other.test:${port}`, `127.0.0.1:${port}`],
    lookup: async () => [{ address: '127.0.0.1', family: 4 }],
    tls: { ca: TC_TEST_CERT },
  });
  try {
    const r = await get(`https://tc.test:${port}/`, dispatcher);
    assert.deepEqual([r.status, r.text], [200, `tls ok tc.test:${port}`]);
    assert.deepEqual(seen, ['tc.test']);
    // Same address, other names: the certificate does not match, so the request fails.
    await assert.rejects(get(`https://other.test:${port}/`, dispatcher), (err: unknown) => {
      assert.match(String((err as { code?: string }).code), /ERR_TLS_CERT_ALTNAME_INVALID/);
      return true;
    });
    await assert.rejects(get(`https://127.0.0.1:${port}/`, dispatcher), (err: unknown) => {
      assert.match(String((err as { code?: string }).code), /ERR_TLS_CERT_ALTNAME_INVALID/);
      return true;
    });
  } finally {
    await dispatcher.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
});
