// Screenshots of a running demo for the docs (docs/images/*.png), with Debian's chromium:
//   npm run demo &   # then
//   node --import tsx scripts/demo/screenshots.ts [--jira http://127.0.0.1:4400] [--out docs/images]
// Opens the admin page (in the simulated Jira host page, as the site admin) and the Jira simulator's
// issue view, waits for real data, and fails if the pages show an error.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values } = parseArgs({
  options: {
    jira: { type: 'string', default: 'http://127.0.0.1:4400' },
    out: { type: 'string', default: 'docs/images' },
    issue: { type: 'string', default: 'TCJ-3' },
  },
});

const site = `${values.jira}/sites/acme`;
mkdirSync(values.out, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/favicon/.test(m.location().url)) problems.push(`console: ${m.text()} (${m.location().url})`);
  });

  await page.goto(`${site}/_sim/open?user=Alice%20Admin&path=/pages/admin`);
  const frame = page.frameLocator('#app-frame');
  const row = frame.locator('#tcj-servers-table tbody tr').first();
  await row.waitFor({ timeout: 30_000 });
  await frame.locator('#tcj-servers-table time').first().waitFor({ timeout: 60_000 });
  await page.waitForTimeout(1500);
  // The servers table and the first rows of the activity (the page itself is much taller).
  await page.screenshot({ path: join(values.out, 'admin-page.png'), clip: { x: 0, y: 0, width: 1280, height: 1100 } });

  const issue = await context.newPage();
  await issue.goto(`${site}/browse/${values.issue}`);
  await issue.getByRole('heading', { name: /^Builds \([1-9]/ }).waitFor({ timeout: 30_000 });
  await issue.screenshot({ path: join(values.out, 'issue-view.png'), fullPage: true });

  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`wrote ${join(values.out, 'admin-page.png')} and ${join(values.out, 'issue-view.png')}`);
} finally {
  await browser.close();
}
