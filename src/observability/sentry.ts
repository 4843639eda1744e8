// Error reporting to Sentry, only when SENTRY_DSN is set: without it the SDK is never even loaded.
//
// What is reported: every log line at error or fatal level that carries an Error (through the hook in
// src/log.ts: failed requests, failed sync tasks, fatal errors), uncaught exceptions and unhandled
// rejections (which still end the process, as they do without Sentry), and whatever captureError() is
// given. What is not: personal data or secrets. Only error reporting is set up — no tracing, no
// OpenTelemetry or ESM loader hooks, no breadcrumbs of HTTP calls or console output, no request data,
// no local variables — and every event and breadcrumb passes through the same guard as the logs
// (scrub() in src/log.ts), after request headers, cookies, query strings, bodies and user data have
// been dropped.
import type { Breadcrumb, ErrorEvent } from '@sentry/node';
import type { Config } from '../config.ts';
import { scrub, scrubString, setErrorReporter, type Logger } from '../log.ts';

type SentryModule = typeof import('@sentry/node');

let sentry: SentryModule | undefined;
// The same Error can reach us twice (logged, then rethrown to the fatal path): report it once.
let reported = new WeakSet<object>();

// Context keys that become Sentry tags (searchable); other primitive context goes into `extra`.
const TAG_KEYS = ['role', 'command', 'component', 'tenantId', 'serverId', 'reqId'] as const;

export interface SentryOptions {
  /** Where SENTRY_RELEASE and SENTRY_ENVIRONMENT are read from. */
  env?: NodeJS.ProcessEnv;
  /** The process role (`start`, `web`, `worker`, a command): a tag on every event. */
  role?: string;
}

/**
 * Starts error reporting when `config.sentryDsn` is set; resolves to whether it did. A failure to
 * start is logged and otherwise ignored: error reporting never stops the service.
 */
export async function initSentry(config: Pick<Config, 'sentryDsn'>, log: Logger, opts: SentryOptions = {}): Promise<boolean> {
  if (!config.sentryDsn) return false;
  if (sentry) return true;
  const env = opts.env ?? process.env;
  try {
    const S = await import('@sentry/node');
    const client = S.init({
      dsn: config.sentryDsn,
      release: env.SENTRY_RELEASE || undefined,
      environment: env.SENTRY_ENVIRONMENT || undefined,
      // No personal data: `dataCollection` is the v10 form of the same promise and wins over
      // `sendDefaultPii` (deprecated, kept so the intent reads plainly).
      sendDefaultPii: false,
      dataCollection: {
        userInfo: false,
        cookies: false,
        httpHeaders: false,
        httpBodies: [],
        urlQueryParams: false,
        databaseQueryData: false,
        stackFrameVariables: false,
        genAI: { inputs: false, outputs: false },
        graphQL: { document: false, variables: false },
      },
      includeLocalVariables: false,
      // Errors only: no tracing, and none of the instrumentation that tracing needs.
      skipOpenTelemetrySetup: true,
      registerEsmLoaderHooks: false,
      defaultIntegrations: false,
      integrations: [
        S.eventFiltersIntegration(),
        S.linkedErrorsIntegration(),
        S.functionToStringIntegration(),
        S.nodeContextIntegration(),
        S.contextLinesIntegration(),
        S.onUncaughtExceptionIntegration(),
        // 'strict': report, then exit as Node does without a handler ('warn' would keep the process running).
        S.onUnhandledRejectionIntegration({ mode: 'strict' }),
      ],
      initialScope: opts.role ? { tags: { role: opts.role } } : undefined,
      beforeSend: scrubEvent,
      beforeBreadcrumb: scrubBreadcrumb,
    });
    if (!client) return false;
    sentry = S;
    setErrorReporter(captureError);
    log.info({ sentryHost: new URL(config.sentryDsn).host, release: env.SENTRY_RELEASE, environment: env.SENTRY_ENVIRONMENT }, 'error reporting to Sentry enabled');
    return true;
  } catch (err) {
    log.warn({ err }, 'could not start error reporting to Sentry; carrying on without it');
    return false;
  }
}

/** Reports an error with its context (ids, message); a no-op unless initSentry() started Sentry. */
export function captureError(err: unknown, context: Record<string, unknown> = {}): void {
  if (!sentry) return;
  if (err !== null && typeof err === 'object') {
    if (reported.has(err)) return;
    reported.add(err);
  }
  try {
    // Primitive values only (ids, counts, the log message): never whole objects such as requests.
    const extra: Record<string, string | number | boolean> = {};
    const tags: Record<string, string> = {};
    for (const [k, v] of Object.entries(context)) {
      if (k === 'level') continue;
      if (typeof v === 'string') extra[k] = scrubString(v);
      else if (typeof v === 'number' || typeof v === 'boolean') extra[k] = v;
    }
    for (const k of TAG_KEYS) {
      const v = extra[k];
      if (v !== undefined) tags[k] = String(v).slice(0, 200);
    }
    const level = context.level === 'fatal' ? 'fatal' : 'error';
    sentry.captureException(err, { extra: scrub(extra) as Record<string, unknown>, tags, level });
  } catch {
    // Reporting must never fail the caller.
  }
}

/** Waits (bounded) until queued events are sent: call before process.exit(). */
export async function flushSentry(timeoutMs = 2_000): Promise<void> {
  if (!sentry) return;
  try {
    await sentry.flush(timeoutMs);
  } catch {
    // ignore: the process is on its way out
  }
}

/** Flushes and stops reporting (tests; the CLI exits instead). */
export async function closeSentry(timeoutMs = 2_000): Promise<void> {
  if (!sentry) return;
  const S = sentry;
  sentry = undefined;
  reported = new WeakSet();
  setErrorReporter(undefined);
  try {
    await S.close(timeoutMs);
  } catch {
    // ignore
  }
}

function stripQuery(url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined;
  return url.replace(/[?#].*$/s, '');
}

/** beforeSend: drops request details and user data, then masks secrets everywhere in the event. */
export function scrubEvent(event: ErrorEvent): ErrorEvent {
  const out: ErrorEvent = { ...event };
  delete out.user;
  if (out.request) {
    // Method and path only: no headers, cookies, query string, body or environment.
    out.request = { method: out.request.method, url: stripQuery(out.request.url) };
  }
  if (out.breadcrumbs) out.breadcrumbs = out.breadcrumbs.map((b) => scrubBreadcrumb(b)).filter((b): b is Breadcrumb => b !== null);
  return scrub(out) as ErrorEvent;
}

/** beforeBreadcrumb: no query strings in URLs, secrets masked. */
export function scrubBreadcrumb(breadcrumb: Breadcrumb): Breadcrumb | null {
  const out: Breadcrumb = { ...breadcrumb };
  if (out.data) {
    const data: Record<string, unknown> = { ...(out.data as Record<string, unknown>) };
    for (const k of ['url', 'http.url', 'to', 'from']) if (typeof data[k] === 'string') data[k] = stripQuery(data[k]);
    delete data['http.query'];
    delete data['http.fragment'];
    out.data = data;
  }
  return scrub(out) as Breadcrumb;
}
