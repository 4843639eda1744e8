import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

test('defaults follow design.md §4', () => {
  const c = loadConfig({});
  assert.equal(c.port, 3000);
  assert.equal(c.baseUrl, 'http://localhost:3000');
  assert.equal(c.databaseUrl, undefined);
  assert.match(c.dataDir, /\/\.data$/);
  assert.equal(c.keyringFile, `${c.dataDir}/keyring.json`);
  assert.equal(c.appKey, 'teamcity-integration-for-jira');
  assert.equal(c.connectInstallKeysUrl, 'https://connect-install-keys.atlassian.com');
  assert.deepEqual(c.outboundAllowHosts, []);
  assert.equal(c.logLevel, 'info');
  assert.equal(c.syncMaxBuildHours, 48);
  const two = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab,arn:aws:kms:eu-west-1:123456789012:key/0000abcd-12ab-34cd-56ef-1234567890ab';
  assert.equal(loadConfig({ KMS_KEY_ARN: two }).kmsKeyArn, two);
  assert.equal(loadConfig({ PORT: '8080' }).baseUrl, 'http://localhost:8080');
  assert.deepEqual(loadConfig({ OUTBOUND_ALLOW_HOSTS: ' TC.local:8111, 127.0.0.1 ,' }).outboundAllowHosts, ['tc.local:8111', '127.0.0.1']);
  assert.equal(loadConfig({ BASE_URL: 'https://app.example.com/' }).baseUrl, 'https://app.example.com');
});

test('each bad value gives one line naming the variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'abc' }, 'invalid PORT: expected an integer 1-65535'],
    [{ PORT: '70000' }, 'invalid PORT: expected an integer 1-65535'],
    [{ PORT: '1.5' }, 'invalid PORT: expected an integer 1-65535'],
    [{ BASE_URL: 'not a url' }, 'invalid BASE_URL: expected an http(s) URL without query or fragment'],
    [{ DATABASE_URL: 'mysql://x/y' }, 'invalid DATABASE_URL: expected a postgres:// or postgresql:// URL'],
    [{ LOG_LEVEL: 'loud' }, 'invalid LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent'],
    [{ APP_KEY: 'has spaces' }, 'invalid APP_KEY: expected 1-64 characters of letters, digits, ".", "_" or "-"'],
    [{ KMS_KEY_ARN: 'key-123' }, 'invalid KMS_KEY_ARN: expected one or more AWS KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>), comma-separated; aliases are not accepted'],
    [{ KMS_KEY_ARN: 'arn:aws:kms:eu-west-1:123456789012:alias/tcj' }, 'invalid KMS_KEY_ARN: expected one or more AWS KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>), comma-separated; aliases are not accepted'],
    [{ OUTBOUND_ALLOW_HOSTS: 'a b,c' }, 'invalid OUTBOUND_ALLOW_HOSTS: expected a comma-separated list of host[:port]'],
    [{ SYNC_MAX_BUILD_HOURS: '0' }, 'invalid SYNC_MAX_BUILD_HOURS: expected a number of hours 1-720'],
    [{ SYNC_MAX_BUILD_HOURS: 'lots' }, 'invalid SYNC_MAX_BUILD_HOURS: expected a number of hours 1-720'],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: Error) => err instanceof ConfigError && err.message === message, JSON.stringify(env));
  }
});

test('the CLI prints the one line and exits 1, with no stack trace', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start'], {
    env: { ...process.env, PORT: 'abc' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'error: invalid PORT: expected an integer 1-65535\n');
  assert.equal(r.stdout, '');
  const unknown = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'frobnicate'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(unknown.status, 1);
  assert.equal(unknown.stderr, 'error: unknown command "frobnicate" (try: tcj help)\n');
});
