// Sentry reporting against a local stand-in for Sentry's envelope endpoint on loopback: what is
// reported arrives, and no secret, header, cookie, query string or user datum is in what arrives.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { createLogger, registerSecret } from '../log.ts';
import { captureError, closeSentry, flushSentry, initSentry } from './sentry.ts';

// Secret values get a random part, so that they never appear in this file's source: the source lines
// around a stack frame are sent (context lines), and must not be what makes the check pass or fail.
const rnd = () => randomBytes(6).toString('hex');
const JWT = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJqaXJhOjEyMzQiLCJxc2giOiJhYmMifQ.${rnd()}c2lnbmF0dXJl`;
const TC_PASSWORD = `teamcity-password-${rnd()}`;
const BASIC = Buffer.from(`svc-user:${TC_PASSWORD}`).toString('base64');
const REGISTERED = `decrypted-TeamCity-token-${rnd()}`;
const URL_PASSWORD = `url-embedded-password-${rnd()}`;
const COOKIE = `cookie-session-value-${rnd()}`;
const EMAIL = `user-${rnd()}@example.com`;
const CTX_PASSWORD = `ctx-password-value-${rnd()}`;
const SECRETS = [JWT, BASIC, REGISTERED, URL_PASSWORD, TC_PASSWORD, COOKIE, EMAIL, CTX_PASSWORD];

interface Envelope {
  path: string;
  body: string;
}

class FakeSentry {
  envelopes: Envelope[] = [];
  server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      this.envelopes.push({ path: req.url ?? '', body: body.toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://publickey@127.0.0.1:${(this.server.address() as AddressInfo).port}/42`;
  }
  text(): string {
    return this.envelopes.map((e) => e.body).join('\n');
  }
  /** The event items (JSON) of every envelope received. */
  events(): Record<string, any>[] {
    const out: Record<string, any>[] = [];
    for (const { body } of this.envelopes) {
      const lines = body.split('\n').filter(Boolean);
      for (let i = 1; i + 1 < lines.length; i += 2) {
        const header = JSON.parse(lines[i]!) as { type?: string };
        if (header.type === 'event') out.push(JSON.parse(lines[i + 1]!) as Record<string, any>);
      }
    }
    return out;
  }
}

function quietLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination, base: { service: 'teamcity-jira', role: 'worker' } }), lines };
}

const fake = new FakeSentry();
let dsn = '';
before(async () => {
  dsn = await fake.start();
});
after(async () => {
  await closeSentry();
  await new Promise((resolve) => fake.server.close(resolve));
});

test('without SENTRY_DSN nothing is initialised and nothing is sent', async () => {
  const { log, lines } = quietLogger();
  const listeners = [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
  assert.equal(await initSentry({ sentryDsn: undefined }, log), false);
  captureError(new Error('not reported'));
  log.error({ err: new Error('logged, not reported') }, 'failed');
  await flushSentry();
  // The SDK was never loaded (it registers its global carrier when it is), and no handler was added.
  assert.equal((globalThis as { __SENTRY__?: unknown }).__SENTRY__, undefined);
  assert.deepEqual([process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')], listeners);
  assert.equal(fake.envelopes.length, 0);
  assert.ok(!lines.join('').includes('Sentry'));
});

test('with SENTRY_DSN errors are reported, and no secret or personal datum reaches Sentry', async () => {
  const { log, lines } = quietLogger();
  const env = { SENTRY_RELEASE: 'tcj@1.2.3', SENTRY_ENVIRONMENT: 'staging' };
  assert.equal(await initSentry({ sentryDsn: dsn }, log, { env, role: 'worker' }), true);
  assert.match(lines.join(''), /error reporting to Sentry enabled/);
  assert.ok(!lines.join('').includes('publickey'), 'the DSN key is not logged');

  registerSecret(REGISTERED);
  // 1. captureError: an error whose message and properties carry credentials, with context.
  const err = Object.assign(
    new Error(
      `TeamCity https://svc:${URL_PASSWORD}@tc.example.com/app/rest/builds?token=${JWT} answered 401 to Authorization: Basic ${BASIC} (token ${REGISTERED})`,
    ),
    { headers: { Authorization: `Basic ${BASIC}` }, password: TC_PASSWORD },
  );
  captureError(err, { tenantId: 'tenant-1', serverId: 'server-9', authorization: `Bearer ${JWT}`, password: CTX_PASSWORD, request: { headers: { cookie: 'x' } } });
  captureError(err, { tenantId: 'tenant-1' }); // the same error again: reported once

  // 2. Through the logger (the hook in log.ts): ids of the child logger become tags.
  log.child({ tenantId: 'tenant-2', reqId: 'req-77' }).error({ err: new Error(`Jira said no to JWT ${JWT}`) }, 'request failed');

  // 3. An event carrying request data, a user and a breadcrumb, as an integration would add them.
  const S = await import('@sentry/node');
  S.addBreadcrumb({ category: 'http', message: `GET with Bearer ${JWT}`, data: { url: `https://site.atlassian.net/rest/api/3/issue/1?jwt=${JWT}` } });
  S.captureEvent({
    message: 'page failed',
    level: 'error',
    user: { id: 'acc-1', email: EMAIL, ip_address: '10.0.0.1' },
    request: {
      method: 'GET',
      url: `https://app.example.com/pages/admin?jwt=${JWT}&xdm_e=https://site.atlassian.net`,
      query_string: `jwt=${JWT}`,
      headers: { Authorization: `JWT ${JWT}`, Cookie: `session=${COOKIE}` },
      cookies: { session: COOKIE },
      data: { password: TC_PASSWORD },
    },
  });
  await flushSentry(5_000);

  const events = fake.events();
  assert.equal(events.length, 3, `expected 3 events, got ${events.length}`);
  assert.ok(fake.envelopes.every((e) => e.path.startsWith('/api/42/envelope/')));
  const text = fake.text();
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `secret ${secret.slice(0, 12)}… reached Sentry`);
  assert.ok(!/authorization"\s*:\s*"(?!\[REDACTED\])/i.test(text), 'an authorization value reached Sentry');
  assert.ok(!text.includes('query_string') && !text.includes('cookies'));

  const find = (pred: (e: Record<string, any>) => boolean) => {
    const e = events.find(pred);
    assert.ok(e, 'event not received');
    return e;
  };
  const captured = find((e) => String(e.exception?.values?.[0]?.value).startsWith('TeamCity'));
  const logged = find((e) => String(e.exception?.values?.[0]?.value).startsWith('Jira said no'));
  const page = find((e) => e.message === 'page failed');
  assert.match(captured.exception.values[0].value, /^TeamCity https:\/\/svc:\[REDACTED\]@tc\.example\.com\/app\/rest\/builds\?token=\[REDACTED\] answered 401/);
  assert.deepEqual({ tenantId: captured.tags.tenantId, serverId: captured.tags.serverId, role: captured.tags.role }, { tenantId: 'tenant-1', serverId: 'server-9', role: 'worker' });
  assert.equal(captured.extra.authorization, '[REDACTED]');
  assert.equal(captured.extra.request, undefined, 'objects in the context are not sent');
  assert.equal(captured.release, 'tcj@1.2.3');
  assert.equal(captured.environment, 'staging');
  assert.ok(captured.exception.values[0].stacktrace.frames.length > 0, 'the stack trace is sent');

  assert.match(logged.exception.values[0].value, /^Jira said no to JWT \[REDACTED\]$/);
  assert.deepEqual({ tenantId: logged.tags.tenantId, reqId: logged.tags.reqId, msg: logged.extra.msg }, { tenantId: 'tenant-2', reqId: 'req-77', msg: 'request failed' });

  assert.deepEqual(page.request, { method: 'GET', url: 'https://app.example.com/pages/admin' });
  assert.equal(page.user, undefined);
  assert.equal(page.breadcrumbs?.[0]?.data?.url, 'https://site.atlassian.net/rest/api/3/issue/1');
  assert.equal(page.breadcrumbs?.[0]?.message, 'GET with Bearer [REDACTED]');
});

test('an unhandled rejection is reported and still ends the process', async () => {
  const sentryModule = fileURLToPath(new URL('./sentry.ts', import.meta.url));
  const logModule = fileURLToPath(new URL('../log.ts', import.meta.url));
  const script = `
    const { initSentry } = await import(${JSON.stringify(sentryModule)});
    const { createLogger } = await import(${JSON.stringify(logModule)});
    await initSentry({ sentryDsn: process.env.TEST_DSN }, createLogger({ level: 'silent' }));
    void Promise.reject(new Error('unhandled with Bearer ${'z'.repeat(24)}'));
    setTimeout(() => process.exit(0), 10_000);
  `;
  const before = fake.envelopes.length;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, TEST_DSN: dsn, NODE_OPTIONS: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.notEqual(code, 0, `the process kept running or exited 0: ${stderr}`);
  const received = fake.envelopes.slice(before).map((e) => e.body).join('\n');
  assert.match(received, /unhandled with Bearer \[REDACTED\]/);
  assert.ok(!received.includes('z'.repeat(24)));
});
