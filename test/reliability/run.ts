// `npm run test:reliability`: the fault and load scenarios (docs/reliability.md), NOT part of `npm test`.
// Runs the suites through scripts/run-tests.ts (embedded PostgreSQL unless DATABASE_URL is set), then
// prints the results table each scenario reported and writes it to test-results/reliability.md.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const files = ['teamcity-faults', 'jira-faults', 'process', 'web-kill', 'load'].map((f) => join('test', 'reliability', `${f}.rel.ts`));
const only = process.argv.slice(2);
mkdirSync('test-results', { recursive: true });
const reportFile = join('test-results', 'reliability.jsonl');
rmSync(reportFile, { force: true });

const started = Date.now();
const child = spawn(process.execPath, ['--import', 'tsx', join('scripts', 'run-tests.ts'), ...(only.length ? only : files)], {
  stdio: 'inherit',
  env: { ...process.env, RELIABILITY_REPORT: join(process.cwd(), reportFile) },
});
const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
const secs = Math.round((Date.now() - started) / 1000);

const rows = existsSync(reportFile)
  ? readFileSync(reportFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>)
  : [];
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = [
  '| scenario | injected | checked | result |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${cell(r.scenario!)} | ${cell(r.injected!)} | ${cell(r.checked!)} | ${cell(r.result!)} |`),
].join('\n');
const md = `Reliability run ${new Date().toISOString()}, ${secs} s, exit ${code}\n\n${table}\n`;
writeFileSync(join('test-results', 'reliability.md'), md);
console.log(`\n${md}`);
process.exit(code);
