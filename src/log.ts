// Structured JSON logs (pino) that never carry a secret. Two layers:
//  1. pino's path redaction for the places secrets are known to live (headers, auth bodies);
//  2. a final guard that walks every logged object and string and masks anything whose key looks
//     secret, any credential-shaped value (JWTs, `Basic …`/`Bearer …` headers, `jwt=` in URLs), and
//     any value registered with `registerSecret` (every secret we decrypt is registered), so a
//     secret that slips into an unexpected field or a message is still masked.
import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

export const MASK = '[REDACTED]';

const SECRET_KEY = /pass(word|wd|phrase)?$|secret|token|authorization|cookie|^jwt$|api[-_]?key|private[-_]?key|credential|^key$/i;
const JWT_LIKE = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const AUTH_SCHEME = /\b(Basic|Bearer|JWT)\s+[A-Za-z0-9+/=._~-]{8,}/g;
const JWT_PARAM = /([?&](?:jwt|token|access_token|password)=)[^&#\s"]+/gi;
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)([^/@\s:]+):([^/@\s]+)@/gi;

// Known secret values (decrypted credentials, shared secrets). Bounded so it cannot grow forever.
const knownSecrets = new Set<string>();
const MAX_KNOWN = 10_000;

/** Remember a secret value so that it is masked wherever it would appear in a log line. */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < 6) return; // too short to search for without masking ordinary words
  if (knownSecrets.has(value)) return;
  if (knownSecrets.size >= MAX_KNOWN) {
    const oldest = knownSecrets.values().next().value;
    if (oldest !== undefined) knownSecrets.delete(oldest);
  }
  knownSecrets.add(value);
}

export function scrubString(s: string): string {
  let out = s
    .replace(JWT_LIKE, MASK)
    .replace(AUTH_SCHEME, (_m, scheme: string) => `${scheme} ${MASK}`)
    .replace(JWT_PARAM, (_m, prefix: string) => `${prefix}${MASK}`)
    .replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${MASK}@`);
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}

/** Returns a deep copy of `value` with secrets masked; never mutates the input. */
export function scrub(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 10) return '[Truncated]';
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  if (value instanceof Error) {
    const plain: Record<string, unknown> = { type: value.name, message: value.message, stack: value.stack };
    for (const [k, v] of Object.entries(value)) plain[k] = v;
    if (value.cause !== undefined) plain.cause = value.cause;
    return scrub(plain, depth + 1, seen);
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
  if (Buffer.isBuffer(value)) return `[Buffer ${value.length} bytes]`;
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && (typeof v === 'string' || typeof v === 'object') && v !== null ? MASK : scrub(v, depth + 1, seen);
  }
  return out;
}

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.token',
  '*.sharedSecret',
  'auth.password',
  'auth.token',
];

// Idempotent serializers: they reduce live request/response objects to the few fields worth logging
// and leave already-reduced objects alone (pino applies serializers again after formatters.log).
type Serializer = (v: unknown) => unknown;
const SERIALIZERS: Record<string, Serializer> = {
  req: (v) => {
    const r = v as { method?: string; url?: string; hostname?: string; ip?: string; raw?: unknown; socket?: unknown; id?: string } | undefined;
    if (!r || typeof r !== 'object' || !('raw' in r || 'socket' in r)) return v;
    return { method: r.method, url: r.url, hostname: r.hostname, remoteAddress: r.ip };
  },
  res: (v) => {
    const r = v as { statusCode?: number; raw?: unknown; socket?: unknown } | undefined;
    if (!r || typeof r !== 'object' || !('raw' in r || 'socket' in r)) return v;
    return { statusCode: r.statusCode };
  },
};

// Error reporting (src/observability/sentry.ts) hooks in here, so that every error-or-worse line that
// carries an Error — a failed request, a failed sync task, a fatal error — is reported once, with the
// logger's ids (tenantId, serverId, reqId, role) as context. Unset: nothing happens.
export type ErrorReporter = (err: Error, context: Record<string, unknown>) => void;
let errorReporter: ErrorReporter | undefined;

export function setErrorReporter(reporter: ErrorReporter | undefined): void {
  errorReporter = reporter;
}

function reportLoggedError(logger: Logger, args: unknown[], level: number): void {
  const [first, second] = args;
  const fields = first !== null && typeof first === 'object' && !(first instanceof Error) ? (first as Record<string, unknown>) : undefined;
  const err = first instanceof Error ? first : fields?.err instanceof Error ? fields.err : undefined;
  if (!err || !errorReporter) return;
  try {
    const { err: _err, ...rest } = fields ?? {};
    errorReporter(err, { ...logger.bindings(), ...rest, ...(typeof second === 'string' ? { msg: second } : {}), level: level >= 60 ? 'fatal' : 'error' });
  } catch {
    // Reporting must never break logging.
  }
}

export interface LogOptions {
  level?: LoggerOptions['level'];
  destination?: DestinationStream;
  base?: Record<string, unknown>;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: opts.base ?? { service: 'teamcity-jira' },
    redact: { paths: REDACT_PATHS, censor: MASK },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: SERIALIZERS,
    formatters: {
      level: (label) => ({ level: label }),
      // Serializers first (so that a request becomes {method, url, …}, not its raw object), then the guard.
      log: (obj) => {
        const out: Record<string, unknown> = { ...obj };
        for (const [key, ser] of Object.entries(SERIALIZERS)) if (out[key] !== undefined) out[key] = ser(out[key]);
        return scrub(out) as Record<string, unknown>;
      },
    },
    hooks: {
      // Messages and interpolation arguments pass through the same guard as objects.
      logMethod(args, method, level) {
        if (errorReporter && level >= 50) reportLoggedError(this, args, level);
        const cleaned = args.map((a) => (typeof a === 'string' ? scrubString(a) : a)) as Parameters<typeof method>;
        method.apply(this, cleaned);
      },
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
