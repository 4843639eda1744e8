// The web shell over real HTTP: health, readiness, headers, error shape and graceful shutdown.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
let app: FastifyInstance;
let base: string;

before(async () => {
  t = await createTestDatabase();
  app = buildServer({ db: t.db, log: quietLog });
  app.get('/test/slow', async () => {
    await new Promise((r) => setTimeout(r, 400));
    return { done: true };
  });
  app.get('/test/crash', async () => {
    throw new Error('secret internals');
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await app.close();
  await t.drop();
});

test('healthz and readyz', async () => {
  const h = await fetch(`${base}/healthz`);
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: 'ok' });
  const r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: 'ready' });
});

test('metrics and the provider logo are served', async () => {
  const m = await fetch(`${base}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
  const text = await m.text();
  assert.match(text, /# TYPE tcj_jira_request_duration_seconds histogram/);
  assert.match(text, /process_cpu_seconds_total/);
  const logo = await fetch(`${base}/static/teamcity.svg`);
  assert.equal(logo.status, 200);
  assert.equal(logo.headers.get('content-type'), 'image/svg+xml');
});

test('every response carries strict security headers', async () => {
  const res = await fetch(`${base}/healthz`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.match(res.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
});

test('unknown routes and crashes answer with the error shape, without internals', async () => {
  const nf = await fetch(`${base}/nope?jwt=abc`);
  assert.equal(nf.status, 404);
  assert.deepEqual(await nf.json(), { error: { code: 'not_found', message: 'no route for GET /nope' } });
  const crash = await fetch(`${base}/test/crash`);
  assert.equal(crash.status, 500);
  assert.deepEqual(await crash.json(), { error: { code: 'internal_error', message: 'internal error' } });
  const bad = await fetch(`${base}/healthz`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'FST_ERR_CTP_INVALID_JSON_BODY');
});

test('readyz says not ready when the database is unreachable', async () => {
  const { Database, createPool } = await import('../../src/db/database.ts');
  const broken = new Database(createPool('postgres://nobody:x@127.0.0.1:1/none'));
  const other = buildServer({ db: broken, log: quietLog });
  const url = await other.listen({ port: 0, host: '127.0.0.1' });
  try {
    const r = await fetch(`${url}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(await r.json(), { status: 'not_ready', reason: 'database unreachable' });
  } finally {
    await other.close();
    await broken.close();
  }
});

test('shutdown lets an in-flight request finish, then refuses new connections', async () => {
  const inflight = fetch(`${base}/test/slow`);
  await new Promise((r) => setTimeout(r, 100));
  const closing = app.close();
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { done: true });
  await closing;
  await assert.rejects(fetch(`${base}/healthz`));
});
