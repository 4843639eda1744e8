import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFixtureJson, newAjv } from './schema.ts';
import { startInstalled, type IssueResponse, type PermissionsResponse, type ProjectResponse } from './testing.ts';

function platformValidator(schemaName: string) {
  const ajv = newAjv();
  const spec = loadFixtureJson('jira-platform-v3-used-endpoints.openapi.json') as { components: unknown };
  ajv.addSchema({ components: spec.components }, 'platform.json');
  return ajv.compile({ $ref: `platform.json#/components/schemas/${schemaName}` });
}

void test('permissions/check answers from the site model', async () => {
  const { sim, call, close } = await startInstalled({ seed: 30 });
  try {
    const site = sim.site('acme');
    const [admin, dev, pa, outsider] = site.users;
    const tcj = Number(site.project('TCJ')!.id);
    const demo = Number(site.project('DEMO')!.id);
    const tcj1 = Number(site.findIssue('TCJ-1')!.id);
    const demo1 = Number(site.findIssue('DEMO-1')!.id);
    const grants = platformValidator('BulkPermissionGrants');
    const check = async (body: unknown) => {
      const r = await call('POST', '/rest/api/3/permissions/check', { body });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(grants(r.body), JSON.stringify(grants.errors));
      return r.body as PermissionsResponse;
    };
    const ask = (accountId: string) => ({
      accountId,
      globalPermissions: ['ADMINISTER'],
      projectPermissions: [
        { permissions: ['ADMINISTER_PROJECTS', 'BROWSE_PROJECTS'], projects: [tcj, demo, 99999] },
        { permissions: ['BROWSE_PROJECTS'], issues: [tcj1, demo1] },
      ],
    });
    assert.deepEqual(await check(ask(admin!.accountId)), {
      globalPermissions: ['ADMINISTER'],
      projectPermissions: [
        { permission: 'ADMINISTER_PROJECTS', projects: [tcj, demo], issues: [] },
        { permission: 'BROWSE_PROJECTS', projects: [tcj, demo], issues: [tcj1, demo1] },
      ],
    });
    assert.deepEqual(await check(ask(dev!.accountId)), {
      globalPermissions: [],
      projectPermissions: [{ permission: 'BROWSE_PROJECTS', projects: [tcj, demo], issues: [tcj1, demo1] }],
    });
    assert.deepEqual(await check(ask(pa!.accountId)), {
      globalPermissions: [],
      projectPermissions: [
        { permission: 'ADMINISTER_PROJECTS', projects: [demo], issues: [] },
        { permission: 'BROWSE_PROJECTS', projects: [demo], issues: [demo1] },
      ],
    });
    assert.deepEqual(await check(ask(outsider!.accountId)), { globalPermissions: [], projectPermissions: [] });
    assert.deepEqual(await check(ask('unknown-account')), { globalPermissions: [], projectPermissions: [] });
    // Grants follow the model when it changes.
    site.grant(outsider!.accountId, 'TCJ', ['ADMINISTER_PROJECTS']);
    assert.deepEqual((await check(ask(outsider!.accountId))).projectPermissions, [{ permission: 'ADMINISTER_PROJECTS', projects: [tcj], issues: [] }]);

    const unknownPerm = await call('POST', '/rest/api/3/permissions/check', { body: { globalPermissions: ['PERMISSION_123'] } });
    assert.equal(unknownPerm.status, 400);
    assert.deepEqual(unknownPerm.body, { errorMessages: [], errors: { PERMISSION_123: 'Unrecognized permission' } });
    assert.equal((await call('POST', '/rest/api/3/permissions/check', { body: { projectPermissions: [{ permissions: [] }] } })).status, 400);
    assert.equal((await call('POST', '/rest/api/3/permissions/check', { body: { bogus: true } })).status, 400);
    assert.ok(platformValidator('ErrorCollection')(unknownPerm.body));
  } finally {
    await close();
  }
});

void test('issue and project responses match the platform OpenAPI schemas; 404s', async () => {
  const { sim, call, close } = await startInstalled({ seed: 31 });
  try {
    const issueSchema = platformValidator('IssueBean');
    const projectSchema = platformValidator('Project');
    const site = sim.site('acme');
    const issue = await call('GET', `/rest/api/3/issue/${site.findIssue('TCJ-2')!.id}`);
    assert.equal(issue.status, 200);
    assert.ok(issueSchema(issue.body), JSON.stringify(issueSchema.errors));
    const ib = issue.body as IssueResponse;
    assert.equal(ib.key, 'TCJ-2');
    assert.equal((ib.fields['project'] as { key: string }).key, 'TCJ');
    assert.equal(ib.self, `${sim.siteUrl('acme')}/rest/api/3/issue/${ib.id}`);
    // By key, case-insensitive fallback, and `fields` filtering.
    const byKey = (await call('GET', '/rest/api/3/issue/tcj-2?fields=project')).body as IssueResponse;
    assert.equal(byKey.key, 'TCJ-2');
    assert.deepEqual(Object.keys(byKey.fields), ['project']);
    assert.ok(issueSchema(byKey));
    assert.equal((await call('GET', '/rest/api/3/issue/NOPE-1')).status, 404);

    for (const idOrKey of ['TCJ', site.project('DEMO')!.id]) {
      const p = await call('GET', `/rest/api/3/project/${idOrKey}`);
      assert.equal(p.status, 200);
      assert.ok(projectSchema(p.body), JSON.stringify(projectSchema.errors));
      assert.equal(typeof (p.body as ProjectResponse).projectTypeKey, 'string');
    }
    assert.equal((await call('GET', '/rest/api/3/project/tcj')).status, 404, 'project key is case-sensitive');
  } finally {
    await close();
  }
});
