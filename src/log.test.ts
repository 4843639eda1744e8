// Secrets never reach the log output: in known places (masked by path), in unexpected places
// (masked by key name or by shape), and when registered as a known secret value.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, registerSecret } from './log.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: createLogger({ level: 'trace', destination: stream }), text: () => lines.join('') };
}

const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJqaXJhOjEyMzQiLCJxc2giOiJhYmMifQ.c2lnbmF0dXJlLWJ5dGVz';

test('secrets in known and unexpected places never reach the output', () => {
  const { log, text } = capture();
  registerSecret('registered-plaintext-VALUE-42');
  log.info({ req: { headers: { authorization: 'Basic c3ZjOnMzY3JldC1wYXNz', cookie: 'session=abc123456789' } } }, 'incoming');
  log.info({ auth: { type: 'basic', username: 'svc', password: 'p4ssw0rd-known-path' } }, 'server added');
  log.info({ tenant: { sharedSecret: 'shared-secret-in-tenant-object' } }, 'installed');
  log.warn({ deeply: { nested: [{ config: { apiKey: 'api-key-deep-in-array', Token: 'Token-capitalised-key' } }] } }, 'odd place');
  log.info({ url: `https://app.example.com/pages/admin?lic=none&jwt=${JWT}&xdm_e=x` }, 'page');
  log.info({ note: `header was Bearer eyJraWQiOiJrMSJ9.e30.${'s'.repeat(20)} and JWT ${JWT}` }, 'free text');
  log.info({ detail: 'the registered-plaintext-VALUE-42 leaked into a message body' }, 'registered');
  log.info('message with Bearer tok_1234567890abcdef and registered-plaintext-VALUE-42 inside');
  log.info({ dsn: 'postgres://tcj_app:db-password-in-url@127.0.0.1/tcj' }, 'database');
  log.error({ err: Object.assign(new Error(`request failed with Authorization: JWT ${JWT}`), { password: 'err-prop-password' }) }, 'boom');
  const out = text();
  for (const secret of [
    'c3ZjOnMzY3JldC1wYXNz',
    'abc123456789',
    'p4ssw0rd-known-path',
    'shared-secret-in-tenant-object',
    'api-key-deep-in-array',
    'Token-capitalised-key',
    JWT,
    'c2lnbmF0dXJlLWJ5dGVz',
    'tok_1234567890abcdef',
    'registered-plaintext-VALUE-42',
    'db-password-in-url',
    'err-prop-password',
  ]) {
    assert.ok(!out.includes(secret), `secret leaked: ${secret}\n${out}`);
  }
  // The useful parts survive.
  assert.match(out, /"username":"svc"/);
  assert.match(out, /lic=none&jwt=\[REDACTED\]&xdm_e=x/);
  assert.match(out, /request failed with Authorization: JWT \[REDACTED\]/);
  assert.match(out, /postgres:\/\/tcj_app:\[REDACTED\]@127\.0\.0\.1\/tcj/);
  assert.equal(out.trim().split('\n').length, 10);
  for (const line of out.trim().split('\n')) JSON.parse(line);
});

test('counts and flags under secret-looking names are kept; the input object is not mutated', () => {
  const { log, text } = capture();
  const input = { secretsRotated: 3, tokenValid: true, password: 'plain-pw-123' };
  log.info(input, 'report');
  const line = JSON.parse(text()) as Record<string, unknown>;
  assert.equal(line.secretsRotated, 3);
  assert.equal(line.tokenValid, true);
  assert.equal(line.password, '[REDACTED]');
  assert.equal(input.password, 'plain-pw-123');
});

test('circular objects do not crash logging', () => {
  const { log, text } = capture();
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  log.info({ a }, 'circular');
  assert.match(text(), /\[Circular\]/);
});
