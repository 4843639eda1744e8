// Typed errors of the TeamCity client and the parser that turns TeamCity error bodies into one short line
// (reference/teamcity-rest.md §1.5). Messages never carry credentials, URLs or HTML: an error may end up in
// logs, in the admin page ("last error") and in the activity log.

/** The route templates of the six TeamCity endpoints we call (product.md) — metric labels and error context. */
export type TcEndpoint =
  | '/app/rest/server'
  | '/app/rest/users/{userLocator}'
  | '/app/rest/buildTypes/{btLocator}'
  | '/app/rest/changes'
  | '/app/rest/builds'
  | '/app/rest/builds/{buildLocator}';

export interface TeamCityErrorContext {
  /** Route template of the call that failed (never the raw URL). */
  endpoint?: TcEndpoint;
  /** HTTP status, when a response was received. */
  status?: number;
  cause?: unknown;
}

/** Base class: every error the client throws for a TeamCity call (except OutboundBlockedError from src/net). */
export class TeamCityError extends Error {
  override name = 'TeamCityError';
  readonly endpoint: TcEndpoint | undefined;
  readonly status: number | undefined;
  constructor(message: string, ctx: TeamCityErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.endpoint = ctx.endpoint;
    this.status = ctx.status;
  }
}

/** A non-2xx answer that is none of the specific cases below (e.g. 400 bad locator, 405, 406, 429). */
export class TeamCityHttpError extends TeamCityError {
  override name = 'TeamCityHttpError';
  override readonly status: number;
  /** The one-line message TeamCity gave (parsed from its error body), or the reason phrase. */
  readonly serverMessage: string;
  constructor(status: number, serverMessage: string, ctx: Omit<TeamCityErrorContext, 'status'> = {}) {
    super(`TeamCity answered ${status}: ${serverMessage}`, { ...ctx, status });
    this.status = status;
    this.serverMessage = serverMessage;
  }
}

/** 401: credentials missing, wrong, revoked or expired. Never retried; the connection is `auth_failed`. */
export class TeamCityAuthError extends TeamCityHttpError {
  override name = 'TeamCityAuthError';
  constructor(serverMessage: string, ctx: Omit<TeamCityErrorContext, 'status'> = {}) {
    super(401, serverMessage, ctx);
    this.message = `TeamCity rejected the credentials (401): ${serverMessage}`;
  }
}

/** 403: authenticated, but the account lacks a permission (e.g. "view build runtime parameters"). */
export class TeamCityForbiddenError extends TeamCityHttpError {
  override name = 'TeamCityForbiddenError';
  constructor(serverMessage: string, ctx: Omit<TeamCityErrorContext, 'status'> = {}) {
    super(403, serverMessage, ctx);
  }
}

/** 404: no such entity — or the account may not see it (TeamCity reports missing view permission as 404). */
export class TeamCityNotFoundError extends TeamCityHttpError {
  override name = 'TeamCityNotFoundError';
  constructor(serverMessage: string, ctx: Omit<TeamCityErrorContext, 'status'> = {}) {
    super(404, serverMessage, ctx);
  }
}

/** Timeouts, connection failures and 5xx answers that persisted through every retry. */
export class TeamCityUnavailableError extends TeamCityError {
  override name = 'TeamCityUnavailableError';
  /** How many attempts were made. */
  readonly attempts: number;
  constructor(message: string, attempts: number, ctx: TeamCityErrorContext = {}) {
    super(message, ctx);
    this.attempts = attempts;
  }
}

/**
 * The server answered, but not with what the REST API returns: malformed/truncated JSON, an HTML page (a login
 * page of an SSO proxy, a redirect to /login.html), XML although JSON was asked for, a redirect, a body over
 * the size limit, or a `nextHref` pointing somewhere else. The response body is never included.
 */
export class TeamCityProtocolError extends TeamCityError {
  override name = 'TeamCityProtocolError';
}

// ---------------------------------------------------------------------------------------------------------
// Error body parsing

const MAX_MESSAGE = 300;
const MAX_TEXT_BODY = 1024;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status >= 500 ? 'Server Error' : status >= 400 ? 'Client Error' : 'Unexpected Status');
}

/** One line: control characters and runs of whitespace collapsed, capped in length. */
export function oneLine(s: string, max = MAX_MESSAGE): string {
  // eslint-disable-next-line no-control-regex
  const flat = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `jetbrains.buildServer.server.rest.errors.NotFoundException: User not found` → `User not found`. */
function stripExceptionClass(s: string): string {
  return s.replace(/^(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b:?\s*/, '');
}

function decodeXmlEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    switch (e) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default: {
        const code = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
      }
    }
  });
}

function fromJson(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const errors = (parsed as { errors?: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return undefined;
  const first = errors[0] as { message?: unknown; additionalMessage?: unknown } | null;
  if (typeof first !== 'object' || first === null) return undefined;
  if (typeof first.message === 'string' && first.message.trim() !== '') return first.message;
  if (typeof first.additionalMessage === 'string' && first.additionalMessage.trim() !== '') return stripExceptionClass(first.additionalMessage);
  return undefined;
}

function fromXml(body: string): string | undefined {
  if (!/<errors[\s>]/.test(body)) return undefined;
  const msg = /<error[\s>][\s\S]*?<message>([\s\S]*?)<\/message>/.exec(body)?.[1];
  if (msg !== undefined && msg.trim() !== '') return decodeXmlEntities(msg);
  const extra = /<additionalMessage>([\s\S]*?)<\/additionalMessage>/.exec(body)?.[1];
  if (extra !== undefined && extra.trim() !== '') return stripExceptionClass(decodeXmlEntities(extra));
  return undefined;
}

/**
 * The text formats: the REST plugin's 2023 three-liner
 * (`Responding with error, status code: 404 (Not Found).` / `Details: <class>: <message>` / `<hint>`), the web
 * layer's 401 (`Authentication required` / `To login manually…`), or a proxy's short text. HTML and anything
 * over 1 KiB is ignored (the official CLI does the same).
 */
function fromText(body: string): string | undefined {
  const text = body.replace(/^\uFEFF/, '').trim();
  if (text === '' || text.startsWith('<') || text.length > MAX_TEXT_BODY) return undefined;
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const details = lines.find((l) => l.startsWith('Details:'));
  if (details !== undefined) {
    const msg = stripExceptionClass(details.slice('Details:'.length).trim());
    if (msg !== '') return msg;
  }
  const first = lines.find((l) => !/^Responding with error, status code:/.test(l));
  return first ?? lines[0];
}

/**
 * A short one-line message from a TeamCity error body: JSON `{"errors":[{"message"}]}` (2025+), then XML
 * `<errors><error><message>`, then plain text (≤ 2023), else `HTTP <status> <reason>`. Stack traces, HTML
 * pages and long bodies are never echoed.
 */
export function parseErrorBody(status: number, body: string, contentType = ''): string {
  const ct = contentType.toLowerCase();
  let msg: string | undefined;
  if (!ct.includes('html')) {
    msg = fromJson(body) ?? fromXml(body) ?? fromText(body);
  }
  const line = msg === undefined ? '' : oneLine(msg);
  return line === '' ? `HTTP ${status} ${reasonPhrase(status)}` : line;
}
