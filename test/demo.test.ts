// Smoke test of `npm run demo`: runs the real thing (app process with embedded PostgreSQL, both
// simulators, the activity ticker) for 20 seconds in a temporary data directory, and checks that it
// prints the URLs, that builds and deployments reach the Jira simulator, that the offline all.js path
// (host page → page token → context token → admin API) works, and that it stops cleanly (exit 0, no
// PostgreSQL left running).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../', import.meta.url);

test('npm run demo: URLs, builds and deployments in Jira, clean exit', { timeout: 90_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tcj-demo-test-'));
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/demo.ts', '--exit-after', '20', '--data-dir', dataDir, '--port', '0', '--jira-port', '0', '--teamcity-port', '0'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    // While it runs: the printed admin link opens a host page whose iframe token yields a context
    // token (the all.js shim's endpoint), which the app's admin API accepts for the site admin.
    const deadline = Date.now() + 60_000;
    while (!/Ctrl-C\)|Ctrl-C stops/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    const openUrl = /(http:\/\/\S+\/_sim\/open\?user=Alice\+Admin&path=\/pages\/admin)/.exec(out)?.[1];
    assert.ok(openUrl, `admin page URL printed:\n${out}`);
    const host = await (await fetch(openUrl)).text();
    const src = /<iframe id="app-frame"[^>]* src="([^"]+)"/.exec(host)?.[1]?.replace(/&amp;/g, '&');
    assert.ok(src, 'host page frames the app page');
    const pageUrl = new URL(src);
    assert.equal(pageUrl.pathname, '/pages/admin');
    const page = await fetch(pageUrl);
    assert.equal(page.status, 200);
    const jiraOrigin = new URL(openUrl).origin;
    assert.match(await page.text(), new RegExp(`<script src="${jiraOrigin}/all.js"`), 'the page loads the simulator all.js');
    const shim = await (await fetch(`${jiraOrigin}/_sim/context-token?callback=cb&jwt=${encodeURIComponent(pageUrl.searchParams.get('jwt')!)}`)).text();
    const token = /^cb\("([^"]+)"\);$/.exec(shim)?.[1];
    assert.ok(token, `context token from the shim: ${shim}`);
    const servers = await fetch(`${pageUrl.origin}/api/v1/servers`, { headers: { authorization: `JWT ${token}` } });
    assert.equal(servers.status, 200);
    assert.equal(((await servers.json()) as { servers: unknown[] }).servers.length, 1);

    const code = await exited;
    assert.equal(code, 0, out);
    for (const what of ['Admin page', 'Issue view', '/browse/TCJ-3?refresh=5', '/metrics', 'TeamCity simulator:', 'Jira simulator:']) {
      assert.ok(out.includes(what), `prints ${what}`);
    }
    const final = /Jira site acme: (\d+) builds, (\d+) deployments received/.exec(out);
    assert.ok(final, `final counts printed:\n${out}`);
    assert.ok(Number(final[1]) > 0, 'builds reached Jira');
    assert.ok(Number(final[2]) >= 1, 'at least one deployment reached Jira');
    assert.match(out, /app stopped \(exit code 0/);
    assert.equal(existsSync(join(dataDir, 'pg', 'postmaster.pid')), false, 'embedded PostgreSQL stopped');
    assert.equal(existsSync(join(dataDir, 'app.lock')), false, 'app lock released');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
