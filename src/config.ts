// Configuration comes only from the environment, validated once at start-up. A wrong value stops the
// process with one line naming the variable (see ConfigError), never a stack trace.
import { resolve } from 'node:path';
import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const port = z.coerce
  .number({ error: 'expected an integer 1-65535' })
  .int('expected an integer 1-65535')
  .min(1, 'expected an integer 1-65535')
  .max(65535, 'expected an integer 1-65535');

const httpUrl = z
  .string()
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash;
    } catch {
      return false;
    }
  }, 'expected an http(s) URL without query or fragment')
  .transform((v) => v.replace(/\/+$/, ''));

const postgresUrl = z.string().refine((v) => {
  try {
    return ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, 'expected a postgres:// or postgresql:// URL');

const hostList = z
  .string()
  .transform((v) => v.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))
  .refine((hosts) => hosts.every((h) => /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.test(h)), 'expected a comma-separated list of host[:port]');

const envSchema = z.object({
  PORT: port.default(3000),
  BASE_URL: httpUrl.optional(),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_APP_URL: postgresUrl.optional(),
  DATA_DIR: z.string().min(1, 'expected a directory path').default('./.data'),
  APP_KEY: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,64}$/, 'expected 1-64 characters of letters, digits, ".", "_" or "-"')
    .default('teamcity-integration-for-jira'),
  CONNECT_INSTALL_KEYS_URL: httpUrl.default('https://connect-install-keys.atlassian.com'),
  KEYRING_FILE: z.string().min(1, 'expected a file path').optional(),
  KMS_KEY_ARN: z
    .string()
    // Key ARNs only: the Encryption SDK decrypts with key ARNs, not aliases. A comma list keeps older keys.
    .regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+(,arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+)*$/, 'expected one or more AWS KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>), comma-separated; aliases are not accepted')
    .optional(),
  OUTBOUND_ALLOW_HOSTS: hostList.default([]),
  ATLASSIAN_ALL_JS_URL: httpUrl.default('https://connect-cdn.atl-paas.net/all.js'),
  SYNC_MAX_BUILD_HOURS: z.coerce
    .number({ error: 'expected a number of hours 1-720' })
    .min(1, 'expected a number of hours 1-720')
    .max(720, 'expected a number of hours 1-720')
    .default(48),
  WORKER_CONCURRENCY: z.coerce
    .number({ error: 'expected an integer 1-256' })
    .int('expected an integer 1-256')
    .min(1, 'expected an integer 1-256')
    .max(256, 'expected an integer 1-256')
    .default(16),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SENTRY_DSN: httpUrl.optional(),
});

export interface Config {
  port: number;
  baseUrl: string;
  /** Connection for migrations (the schema owner). Unset → embedded PostgreSQL. */
  databaseUrl: string | undefined;
  /** Connection for the runtime role; derived from databaseUrl when unset (see db/connection.ts). */
  databaseAppUrl: string | undefined;
  dataDir: string;
  appKey: string;
  connectInstallKeysUrl: string;
  keyringFile: string;
  kmsKeyArn: string | undefined;
  outboundAllowHosts: string[];
  /** Atlassian's iframe bridge the pages load (an offline shim in the demo). */
  allJsUrl: string;
  /** Polls (and, separately, deliveries) one worker process runs at once. */
  workerConcurrency: number;
  /** The longest build expected: the start-time window of each poll (reference §5.4). */
  syncMaxBuildHours: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  sentryDsn: string | undefined;
}

/** Parses the environment; throws ConfigError with a one-line message naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset" (a common result of `FOO= npm start` or templated env files).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const message = issue.code === 'invalid_value' ? `expected one of ${issue.values.join(', ')}` : issue.message;
    throw new ConfigError(`invalid ${name}: ${message}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.DATA_DIR);
  return {
    port: e.PORT,
    baseUrl: e.BASE_URL ?? `http://localhost:${e.PORT}`,
    databaseUrl: e.DATABASE_URL,
    databaseAppUrl: e.DATABASE_APP_URL,
    dataDir,
    appKey: e.APP_KEY,
    connectInstallKeysUrl: e.CONNECT_INSTALL_KEYS_URL,
    keyringFile: resolve(e.KEYRING_FILE ?? `${dataDir}/keyring.json`),
    kmsKeyArn: e.KMS_KEY_ARN,
    outboundAllowHosts: e.OUTBOUND_ALLOW_HOSTS,
    syncMaxBuildHours: e.SYNC_MAX_BUILD_HOURS,
    workerConcurrency: e.WORKER_CONCURRENCY,
    allJsUrl: e.ATLASSIAN_ALL_JS_URL,
    logLevel: e.LOG_LEVEL,
    sentryDsn: e.SENTRY_DSN,
  };
}
