// Two admins adding the same TeamCity server at the same moment: exactly one connection is created
// (two would show every build twice in Jira). Found by the web-kill reliability scenario.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startSecurityWorld, type SecurityWorld } from './world.ts';

let w: SecurityWorld;
before(async () => {
  w = await startSecurityWorld();
});
after(() => w.close());

test('concurrent creations of one server: one 201, the others 409 server_exists', async () => {
  const token = w.tc.model.addToken('admin');
  const body = { name: 'Race', url: w.tc.url, auth: { type: 'token', token }, backfillDays: 0 };
  const before = await w.count('teamcity_servers', 'tenant_id = $1', [w.tenantIds.acme]);
  const results = await Promise.all(Array.from({ length: 4 }, () => w.call('POST', '/api/v1/servers', { body })));
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [201, 409, 409, 409]);
  for (const r of results.filter((x) => x.status === 409)) assert.equal(r.body.error.code, 'server_exists');
  assert.equal(await w.count('teamcity_servers', 'tenant_id = $1', [w.tenantIds.acme]), before + 1);
});
