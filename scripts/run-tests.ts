// `npm test`: runs every *.test.ts under src/, sandbox/ and test/ with Node's test runner (Node 20
// does not expand globs, so the files are listed here).
//
// Database suites need a PostgreSQL server. With DATABASE_URL set they use that server (CI points it
// at the machine's PostgreSQL 15); otherwise this script starts the product's own embedded PostgreSQL
// in a temporary DATA_DIR — the default path — and stops it afterwards. Each suite then creates its
// own database on that server (test/helpers/db.ts), so suites can run in parallel.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/log.ts';

const roots = ['src', 'sandbox', 'test'];

function findTests(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    if (name === 'node_modules') return [];
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return findTests(p);
    return name.endsWith('.test.ts') ? [p] : [];
  });
}

const only = process.argv.slice(2);
const files = (only.length ? only : roots.flatMap(findTests)).sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

const env = { ...process.env };
let stop = async () => {};
if (env.DATABASE_URL) {
  env.TEST_PG = JSON.stringify({ adminUrl: env.DATABASE_URL, kind: 'external' });
  console.log(`database suites: PostgreSQL at DATABASE_URL`);
} else {
  const dataDir = mkdtempSync(join(tmpdir(), 'tcj-test-pg-'));
  const pg = await startEmbeddedPostgres({ dataDir, log: createLogger({ level: 'warn' }) });
  env.TEST_PG = JSON.stringify({ adminUrl: pg.superuserUrl, ownerUrl: pg.ownerUrl, appUrl: pg.appUrl, kind: 'embedded' });
  console.log(`database suites: embedded PostgreSQL in ${dataDir}`);
  stop = async () => {
    await pg.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
// Suites get the database from TEST_PG; a DATABASE_URL of their own would change what they test.
delete env.DATABASE_URL;

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env });
const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await stop();
process.exit(code);
