// The pages in a real browser (Debian chromium via playwright-core), embedded the way Jira embeds them:
// an iframe inside a page served from the Jira site's origin. Everything behind it is real: the app's
// lifecycle, admin API and pages on loopback, a worker polling a simulated TeamCity (wall-clock time,
// generated history) and delivering to a simulated Jira site, PostgreSQL. Atlassian's all.js is
// replaced by a stub that hands out a context token the simulator signed for the user.
//
// CI installs chromium (`apt-get install -y chromium`); without /usr/bin/chromium this suite FAILS.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContext, type FrameLocator, type Page } from 'playwright-core';
import type { Dispatcher } from 'undici';
import { startJiraSimulator, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer } from '../../src/sync/poller.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { registerAdminApi } from '../../src/web/api/index.ts';
import { DEFAULT_ALL_JS_URL, registerPages } from '../../src/web/pages/index.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';

const CHROMIUM = '/usr/bin/chromium';
const APP_KEY = 'teamcity-integration-for-jira';
const SHOTS = join(process.cwd(), 'test-results');
const SERVER_NAME = '<img src=x onerror=alert(1)>';
const XSS_CONFIG = '<script>alert("configuration")</script>';
const XSS_BRANCH = 'feature/TCJ-1-<script>alert(2)</script>';

let t: TestDatabase;
let sim: JiraSimulator;
let tc: TeamCitySimulator;
let app: FastifyInstance;
let appUrl: string;
let keyDir: string;
let dispatcher: Dispatcher;
let worker: SyncWorker;
let browser: Browser;
let context: BrowserContext;
let tcToken: string;
const dialogs: string[] = [];
const cspViolations: string[] = [];
const pageErrors: string[] = [];

/** Polls `check` until it returns true (or a value), failing with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** Opens an app page inside an iframe of a page on the Jira site's origin, as `user`. */
async function openInJira(user: string, appPath: string, query: Record<string, string> = {}): Promise<{ page: Page; frame: FrameLocator }> {
  const page = await context.newPage();
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // all.js stub: AP.context.getToken() answers with a context token the simulator signed for this user.
  await page.route(DEFAULT_ALL_JS_URL, (route) =>
    route.fulfill({
      contentType: 'text/javascript',
      body: `window.AP = { context: { getToken(cb) { const t = ${JSON.stringify(sim.contextToken('acme', user))}; if (cb) cb(t); return Promise.resolve(t); } },
        resize() { window.__apResizes = (window.__apResizes || 0) + 1; } };`,
    }),
  );
  const host = `${new URL(sim.siteUrl('acme')).origin}/jira-host${appPath.replace(/\W/g, '-')}`;
  const src = sim.iframeUrl('acme', user, appPath, { query });
  await page.route(host, (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><html><body style="margin:0;font-family:sans-serif"><div style="padding:8px 16px;background:#0747a6;color:#fff">Jira (simulated host page)</div><iframe id="jira-frame" src="${src.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}" style="border:0;width:1280px;height:1500px"></iframe></body></html>`,
    }),
  );
  await page.setViewportSize({ width: 1300, height: 1000 });
  await page.goto(host);
  const frame = page.frameLocator('#jira-frame');
  try {
    await frame.locator('#tcj-root').waitFor({ timeout: 15_000 });
  } catch (err) {
    const inner = page.frames().map((f) => f.url());
    await page.screenshot({ path: join(SHOTS, 'failed-load.png') });
    throw new Error(`${appPath} did not render in the Jira frame (frames: ${inner.join(', ')}; page errors: ${pageErrors.join('; ')}; console: ${cspViolations.join('; ')})`, { cause: err });
  }
  return { page, frame };
}

before(async () => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(`${CHROMIUM} is missing: install it with \`apt-get update && apt-get install -y chromium\` (CI does); the browser tests cannot run without it`);
  }
  await mkdir(SHOTS, { recursive: true });
  t = await createTestDatabase();
  keyDir = await mkdtemp(join(tmpdir(), 'tcj-browser-'));
  const secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  const tenants = new TenantRepository(t.db, secrets);

  // TeamCity on the wall clock, with history over the last 20 days and one hostile configuration.
  tc = await startTeamCitySimulator({ version: '2025.11.2', realTime: true, startTime: Date.now() });
  const m = tc.model;
  tc.generateHistory({ seed: 11, projects: 2, buildTypesPerProject: 3, buildsPerType: 15, periodMs: 20 * 86400_000, jiraKeys: ['TCJ', 'DEMO'] });
  m.addProject({ id: 'Xss', name: '<b>Evil</b> project' });
  m.addVcsRoot({ id: 'Xss_Git', projectId: 'Xss', url: 'https://git.example.com/xss.git' });
  m.addBuildType({ id: 'Xss_Build', projectId: 'Xss', name: XSS_CONFIG, type: 'regular', vcsRootIds: ['Xss_Git'], branched: true });
  m.addChange({ vcsRootId: 'Xss_Git', comment: 'TCJ-1 <script>alert(3)</script> in a commit', branch: XSS_BRANCH });
  m.runBuild({ buildTypeId: 'Xss_Build', branch: XSS_BRANCH, durationMs: 60_000 });
  m.addUser({ username: 'jira-sync', password: 'sync-pw', viewProjects: 'all' });
  tcToken = m.addToken('jira-sync');

  sim = await startJiraSimulator({ seed: 5, sites: ['acme'] });
  const port = await freePort();
  appUrl = `http://127.0.0.1:${port}`;
  const allow = [new URL(sim.url).host, new URL(tc.url).host];
  dispatcher = createOutboundDispatcher({ allowHosts: allow, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 });
  app = buildServer({ db: t.db, log: quietLog });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: allow });
  registerAdminApi(app, { db: t.db, secrets, tenants, dispatcher, log: quietLog, appKey: APP_KEY, baseUrl: appUrl, teamcity: { timeoutMs: 5000, maxAttempts: 1 } });
  registerPages(app, { tenants, baseUrl: appUrl });
  await app.listen({ port, host: '127.0.0.1' });
  const installed = await sim.installApp('acme', `${appUrl}/atlassian-connect.json`);
  assert.equal(installed.status, 204, installed.responseBody);

  const pollerDeps = { db: t.db, secrets, dispatcher, log: quietLog, teamcity: { timeoutMs: 5000, maxAttempts: 2, retryBaseMs: 10 } };
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(pollerDeps, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants, appKey: APP_KEY, dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    { workerId: 'browser-test-worker', tickMs: 200 },
  );
  worker.start();

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      // The simulated Jira host page is fulfilled by the test (no IP, so "public" to Chromium) and frames
      // the app on loopback; Local Network Access would block that. Real Jira and the app are both public.
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
  context = await browser.newContext();
  // Nothing may leave the machine: only the simulators and the app on loopback (all.js is stubbed above).
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
});

after(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await worker?.stop();
  await app?.close();
  await sim?.close();
  await tc?.close();
  await dispatcher?.close();
  await t?.drop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

describe('pages in a browser', () => {
  test('admin page: add a server (after a connection test), see it healthy, backfill to 100%, edit an environment rule, read the activity, remove it', async () => {
    const { page, frame } = await openInJira('Alice Admin', '/pages/admin');
    await frame.getByText('No TeamCity servers yet').waitFor();

    // Add: a wrong token fails the test with TeamCity's reason, and Save stays disabled.
    await frame.locator('#tcj-add-server').click();
    await frame.locator('#tcj-f-name').fill(SERVER_NAME);
    await frame.locator('#tcj-f-url').fill(tc.url);
    await frame.locator('#tcj-f-auth').selectOption('token');
    await frame.locator('#tcj-f-secret').fill('not-a-valid-token');
    assert.equal(await frame.locator('#tcj-save').isDisabled(), true, 'save needs a successful test first');
    await frame.locator('#tcj-test').click();
    await frame.locator('#tcj-test-result .tcj-message-error').waitFor();
    assert.match(await frame.locator('#tcj-test-result').innerText(), /Connection failed: .+/);
    assert.equal(await frame.locator('#tcj-save').isDisabled(), true);
    await page.screenshot({ path: join(SHOTS, 'admin-connection-failed.png'), fullPage: true });

    await frame.locator('#tcj-f-secret').fill(tcToken);
    await frame.locator('#tcj-test').click();
    await frame.locator('#tcj-test-result .tcj-message-success').waitFor();
    assert.match(await frame.locator('#tcj-test-result').innerText(), /Connected to TeamCity 2025\.11\.2.*jira-sync/);
    assert.equal(await frame.locator('#tcj-save').isDisabled(), false);
    await frame.locator('#tcj-save').click();

    // The row: the hostile name is text, not markup.
    const row = frame.locator('#tcj-servers-table tbody tr').first();
    await row.waitFor();
    assert.equal(await row.locator('.tcj-server-name').textContent(), SERVER_NAME);
    assert.equal(await frame.locator('img[src="x"]').count(), 0);

    // Healthy: OK, and a last successful sync time (the worker polls it).
    await until('the server to turn healthy', async () => (await row.locator('.tcj-lozenge').first().textContent()) === 'OK' && (await row.locator('time').count()) > 0);
    // Builds reach Jira (the add requested a 90-day backfill).
    await until('builds in Jira', async () => sim.site('acme').builds.size > 0, 60_000);

    // Backfill: start one and watch the bar reach 100%.
    await row.locator('[data-action="backfill"]').click();
    await frame.locator('#tcj-backfill').waitFor();
    await frame.locator('#tcj-bf-since').fill(new Date(Date.now() - 30 * 86400_000).toISOString().slice(0, 10));
    await frame.locator('#tcj-bf-start').click();
    await frame.getByText('Backfill started.').waitFor();
    try {
      await until('backfill progress 100%', async () => (await frame.locator('#tcj-bf-progress').getAttribute('aria-valuenow')) === '100' && /^Finished/.test(await frame.locator('#tcj-bf-label').innerText()), 60_000);
    } catch (err) {
      await page.screenshot({ path: join(SHOTS, 'failed-backfill.png'), fullPage: true });
      const st = await t.ownerPool.query('SELECT * FROM sync_state');
      throw new Error(`backfill: label ${await frame.locator('#tcj-bf-label').innerText()}; sync_state ${JSON.stringify(st.rows)}`, { cause: err });
    }
    assert.match(await frame.locator('#tcj-bf-label').innerText(), /100%.*builds/);
    await page.screenshot({ path: join(SHOTS, 'admin-backfill.png'), fullPage: true });

    // Rules: the preview lists the configurations; an environment rule changes it live.
    await row.locator('[data-action="rules"]').click();
    await frame.locator('#tcj-preview-table').waitFor({ timeout: 20_000 });
    const before = await frame.locator('#tcj-preview-table').innerText();
    assert.ok(!before.includes('Blue Moon'));
    assert.ok(before.includes(XSS_CONFIG), 'the hostile configuration name is listed as text');
    await frame.locator('[data-add="environment"]').click();
    const envRow = frame.locator('[data-row="environment"]').last();
    await envRow.locator('[data-field="buildTypeId"]').fill('Xss_Build');
    await envRow.locator('[data-field="deployment"]').selectOption('true');
    await envRow.locator('[data-field="name"]').fill('Blue Moon');
    await envRow.locator('[data-field="type"]').selectOption('staging');
    await until('the preview to show the new environment', async () => /Blue Moon/.test(await frame.locator('#tcj-preview-table').innerText()), 15_000);
    const xssRow = frame.locator('#tcj-preview-table tbody tr', { hasText: 'Xss_Build' });
    assert.match(await xssRow.innerText(), /deployment[\s\S]*Blue Moon[\s\S]*staging/i);
    // An invalid pattern: the API's message is shown, the preview does not crash.
    await envRow.locator('[data-field="namePattern"]').fill('/[unclosed/');
    await until('the validation message', async () => /regular expression/i.test(await frame.locator('#tcj-preview').innerText()), 15_000);
    await envRow.locator('[data-field="namePattern"]').fill('');
    await until('the preview to recover', async () => /Blue Moon/.test(await frame.locator('#tcj-preview-table').innerText()), 15_000);
    await frame.locator('#tcj-rules-save').click();
    await frame.getByText('Rules saved.').waitFor();
    await page.screenshot({ path: join(SHOTS, 'admin-rules.png'), fullPage: true });

    // Activity: Jira's verdicts, filterable.
    await until('activity rows', async () => {
      await frame.locator('#tcj-act-filters button[type="submit"]').click();
      return (await frame.locator('#tcj-activity-table tbody tr').count()) > 0;
    });
    await frame.locator('#tcj-act-outcome').selectOption('accepted');
    await until('accepted-only activity', async () => {
      const verdicts = await frame.locator('#tcj-activity-table tbody tr td:nth-child(5)').allInnerTexts();
      return verdicts.length > 0 && verdicts.every((v) => /accepted/i.test(v));
    });
    await frame.locator('#tcj-act-outcome').selectOption('');
    await frame.locator('#tcj-act-issue').fill('not a key');
    await frame.locator('#tcj-act-filters button[type="submit"]').click();
    await until('the issue-key validation message', async () => /issue key such as ABC-123/.test(await frame.locator('#tcj-activity-list').innerText()));
    await frame.locator('#tcj-act-issue').fill('');
    await frame.locator('#tcj-act-filters button[type="submit"]').click();
    await page.screenshot({ path: join(SHOTS, 'admin.png'), fullPage: true });

    // Remove (with an in-page confirmation, not window.confirm).
    await row.locator('[data-action="remove"]').click();
    await row.locator('[data-action="confirm-remove"]').click();
    await frame.getByText('No TeamCity servers yet').waitFor({ timeout: 20_000 });
    await until('Jira data deleted', async () => sim.site('acme').builds.size === 0 && sim.site('acme').deployments.size === 0, 20_000);
    assert.ok(((await frame.locator('body').evaluate(() => (globalThis as { __apResizes?: number }).__apResizes)) ?? 0) > 0, 'AP.resize() called');
    await page.close();
  });

  test('issue page: the diagnostic for a key, hostile branch and configuration names as text', async () => {
    // A fresh server so there is something to diagnose (the first test removed its server).
    const { page: adminPage, frame: admin } = await openInJira('Alice Admin', '/pages/admin');
    await admin.locator('#tcj-add-server').click();
    await admin.locator('#tcj-f-name').fill('TeamCity');
    await admin.locator('#tcj-f-url').fill(tc.url);
    await admin.locator('#tcj-f-secret').fill(tcToken);
    await admin.locator('#tcj-test').click();
    await admin.locator('#tcj-test-result .tcj-message-success').waitFor();
    await admin.locator('#tcj-save').click();
    await admin.locator('#tcj-servers-table tbody tr').first().waitFor();
    await adminPage.close();
    await until('the hostile build in Jira', async () => [...sim.site('acme').builds.values()].some((b) => b.issueKeys.includes('TCJ-1') && String(b.data.displayName).includes('<script>')), 60_000);

    const { page, frame } = await openInJira('Dan Developer', '/pages/issue', { issueId: '10000', issueKey: 'TCJ-1' });
    await frame.locator('#tcj-issue-table').waitFor({ timeout: 20_000 });
    const hostile = frame.locator('#tcj-issue-table tbody tr', { hasText: XSS_BRANCH });
    await hostile.waitFor();
    assert.match(await hostile.innerText(), /accepted/i);
    assert.ok((await frame.locator('#tcj-issue-summary').innerText()).length > 0, 'a summary');
    assert.equal(await frame.locator('#tcj-issue-table script').count(), 0, 'no script element from data');
    await page.screenshot({ path: join(SHOTS, 'issue.png'), fullPage: true });
    await page.close();

    // Project page for a project admin: recent builds, the hostile branch as text.
    const proj = await openInJira('Alice Admin', '/pages/project', { projectId: '10000', projectKey: 'TCJ' });
    await proj.frame.locator('#tcj-project-builds').waitFor({ timeout: 20_000 });
    const projectBuilds = await proj.frame.locator('#tcj-project-builds').innerText();
    assert.ok(projectBuilds.includes(XSS_BRANCH), 'the hostile branch is listed as text');
    assert.equal(await proj.frame.locator('#tcj-project-builds script').count(), 0);
    await proj.page.screenshot({ path: join(SHOTS, 'project.png'), fullPage: true });
    await proj.page.close();

    // A user without access to the project sees the API's refusal, not data.
    const outsider = await openInJira('Otto Outsider', '/pages/issue', { issueId: '10000', issueKey: 'TCJ-1' });
    await outsider.frame.locator('.tcj-message-error').waitFor({ timeout: 20_000 });
    assert.equal(await outsider.frame.locator('#tcj-issue-table').count(), 0);
    await outsider.page.close();
  });

  test('the page will not render inside a frame on any other origin (frame-ancestors)', async () => {
    const page = await context.newPage();
    const evil = `http://localhost:${new URL(appUrl).port}/evil-host`;
    await page.route(evil, (route) =>
      route.fulfill({ contentType: 'text/html', body: `<!doctype html><iframe id="f" src="${sim.iframeUrl('acme', 'Alice Admin', '/pages/admin').replace(/&/g, '&amp;')}"></iframe>` }),
    );
    await page.goto(evil);
    await page.waitForTimeout(1500);
    const framed = page.frames().find((f) => f !== page.mainFrame());
    const rendered = framed ? await framed.locator('#tcj-root').count().catch(() => 0) : 0;
    assert.equal(rendered, 0, 'blocked by frame-ancestors');
    await page.close();
  });

  test('no alert/confirm dialogs, no CSP violations, no script errors', () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
