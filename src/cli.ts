#!/usr/bin/env node
// Command line: `tcj <command>` (or `node dist/cli.js <command>`). Errors an operator can fix are
// printed as one line on stderr with exit code 1; nothing prints a stack trace for bad input.
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { resolveDatabase } from './db/connect.ts';
import { createPool } from './db/database.ts';
import { DataDirInUseError } from './db/embedded.ts';
import { migrate, MigrationError } from './db/migrate.ts';
import { KeyringError } from './crypto/keyring.ts';
import { rotateLocalKeys } from './crypto/rotate.ts';
import { KEYRING_RECHECK_MS, SecretDecryptError } from './crypto/secrets.ts';
import { purgeExpiredTenants } from './tenants/retention.ts';
import { createLogger, type Logger } from './log.ts';
import { openRuntime, startProcess, type AppProcess } from './app.ts';
import { captureError, flushSentry, initSentry } from './observability/sentry.ts';

const USAGE = `usage: tcj <command>

commands:
  start         web server and sync worker in one process; embedded PostgreSQL unless DATABASE_URL is set
  web           the web server only (any number behind a load balancer)
  worker        the sync worker only: polls TeamCity, delivers to Jira (any number, on any machines)
  migrate       apply database migrations and exit
  purge-expired delete, for good, the tenants uninstalled more than 60 days ago (workers also do this every minute)
  rotate-keys   add a new primary key to the local keyring and re-encrypt every stored secret under it
                  --no-new-key   only re-encrypt what is not yet under the primary key (resume an interrupted run)

configuration comes from environment variables; see README.md`;

const EXPECTED_ERRORS = [ConfigError, DataDirInUseError, MigrationError, KeyringError, SecretDecryptError];

async function runServer(config: Config, log: Logger, roles: { web: boolean; worker: boolean }): Promise<void> {
  // Handlers first: a signal during start-up stops the process cleanly once start-up is done.
  const state: { app?: AppProcess; early?: NodeJS.Signals; signals: number } = { signals: 0 };
  // Queued error reports are sent (bounded wait) before the process exits.
  const exit = (code: number) => flushSentry().finally(() => process.exit(code));
  const stop = (running: AppProcess, sig: NodeJS.Signals) =>
    running.shutdown(sig).then(
      () => exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        return exit(1);
      },
    );
  const onSignal = (sig: NodeJS.Signals) => {
    if (++state.signals > 1) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    if (state.app) void stop(state.app, sig);
    else state.early = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  state.app = await startProcess(config, log, roles);
  if (roles.web) log.info({ url: config.baseUrl, port: config.port }, 'listening');
  if (state.early) await stop(state.app, state.early);
}

async function runMigrate(config: Config, log: Logger): Promise<void> {
  const urls = await resolveDatabase(config, log, { attachIfRunning: true });
  try {
    const applied = await migrate(urls.ownerUrl, log);
    log.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
  } finally {
    await urls.release();
  }
}

async function runRotateKeys(config: Config, log: Logger, args: string[]): Promise<void> {
  const unknown = args.filter((a) => a !== '--no-new-key');
  if (unknown.length) throw new ConfigError(`rotate-keys: unknown option ${unknown[0]}`);
  const runtime = await openRuntime(config, log, { attachIfRunning: true });
  const ownerPool = createPool(runtime.urls.ownerUrl, { max: 2, applicationName: 'teamcity-jira-rotate-keys' });
  try {
    const report = await rotateLocalKeys({
      keyringFile: config.keyringFile,
      ownerPool,
      secrets: runtime.secrets,
      log,
      addKey: !config.kmsKeyArn && !args.includes('--no-new-key'),
      pickupWaitMs: KEYRING_RECHECK_MS + 1_000,
    });
    log.info(report, 'rotate-keys finished');
    process.stdout.write(`${JSON.stringify(report)}\n`);
    if (report.failed) process.exitCode = 1;
  } finally {
    await ownerPool.end();
    await runtime.close();
  }
}

async function runPurgeExpired(config: Config, log: Logger): Promise<void> {
  const runtime = await openRuntime(config, log, { attachIfRunning: true });
  try {
    const report = await purgeExpiredTenants(runtime.db, log);
    log.info(report, 'purge-expired finished');
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await runtime.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let config: Config;
  let log: Logger | undefined;
  try {
    config = loadConfig();
    log = createLogger({ level: config.logLevel, base: { service: 'teamcity-jira', role: command } });
    await initSentry(config, log, { role: command }); // only when SENTRY_DSN is set
    switch (command) {
      case 'start':
        return await runServer(config, log, { web: true, worker: true });
      case 'web':
        return await runServer(config, log, { web: true, worker: false });
      case 'worker':
        return await runServer(config, log, { web: false, worker: true });
      case 'migrate':
        return await runMigrate(config, log);
      case 'rotate-keys':
        return await runRotateKeys(config, log, args);
      case 'purge-expired':
        return await runPurgeExpired(config, log);
      default:
        throw new ConfigError(`unknown command "${command}" (try: tcj help)`);
    }
  } catch (err) {
    if (EXPECTED_ERRORS.some((E) => err instanceof E)) {
      process.stderr.write(`error: ${(err as Error).message}\n`);
    } else {
      log?.fatal({ err }, 'fatal error');
      captureError(err, { command, level: 'fatal' }); // once: the line above may have reported it already
      await flushSentry();
      process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
}
