// TeamCity REST client (reference/teamcity-rest.md; product.md). Read-only, GET only, and only the six
// endpoints of product.md:
//   GET /app/rest/server, /app/rest/users/{userLocator}, /app/rest/buildTypes/{btLocator},
//   GET /app/rest/changes, /app/rest/builds, /app/rest/builds/{buildLocator}.
// Every request goes through the SSRF-guarded dispatcher it is given (src/net/outbound.ts), sends
// `Accept: application/json` and Basic or Bearer credentials, has a per-attempt timeout, and is retried with
// exponential backoff + jitter on 5xx, timeouts and connection failures — never on 4xx. Redirects are never
// followed. Paging follows `nextHref` only within the same endpoint on the same origin (§5.1), stops on the
// first empty page unless the query has a start cut-off, and has a hard page cap.
import { setTimeout as delay } from 'node:timers/promises';
import { request, type Dispatcher } from 'undici';
import { assertOutboundUrl, OutboundBlockedError, outboundAllowHostsOf } from '../net/outbound.ts';
import { registerSecret, type Logger } from '../log.ts';
import { teamcityRequestSeconds } from '../metrics.ts';
import { serverClockFrom, type ServerClock } from './dates.ts';
import {
  TeamCityAuthError,
  TeamCityForbiddenError,
  TeamCityHttpError,
  TeamCityNotFoundError,
  TeamCityProtocolError,
  TeamCityUnavailableError,
  parseErrorBody,
  reasonPhrase,
  type TcEndpoint,
} from './errors.ts';
import { BUILD_TYPE_FIELDS, CHANGES_PAGE_FIELDS, SERVER_FIELDS, USER_FIELDS, buildFields, buildsPageFields } from './fields.ts';
import { buildIdLocator, changesOfBuildLocator } from './locator.ts';
import type { TcBuild, TcBuildTypeDetails, TcChange, TcServer, TcUser } from './types.ts';

export type TeamCityAuth = { type: 'basic'; username: string; password: string } | { type: 'token'; token: string };

export interface TeamCityClientOptions {
  /** Server root URL, with its context path if any (`https://ci.example.com/teamcity`). No query, no userinfo. */
  baseUrl: string;
  auth: TeamCityAuth;
  /** From createOutboundDispatcher: all HTTP goes through it. */
  dispatcher: Dispatcher;
  log: Logger;
  /** Per attempt, headers and body together. Default 30 s (JetBrains: "some calls can take minutes" — raise for backfills). */
  timeoutMs?: number;
  /** Attempts per request including the first. Default 4. */
  maxAttempts?: number;
  /** Backoff before retry n (n ≥ 1): random in [½, 1] × min(retryMaxMs, retryBaseMs × 2^(n−1)). Defaults 500 / 10 000 ms. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** OUTBOUND_ALLOW_HOSTS for validating baseUrl; default: the allow-list the dispatcher was made with. */
  allowHosts?: readonly string[];
  /** Plain http for allow-listed hosts (default true; never for others). */
  allowHttp?: boolean;
  /** Aborts every in-flight and later request (worker shutdown). */
  signal?: AbortSignal;
  userAgent?: string;
}

export interface PageOptions {
  /**
   * Stop at the first empty page even if it carries a nextHref (default true). Such a nextHref only raises
   * lookupLimit (§5.1) and, without a start-time cut-off, turns into a scan of the whole history. Pass false for
   * queries with a start cut-off (finishedBuildsLocator, backfillBuildsLocator; see hasStartCutoff).
   */
  stopOnEmptyPage?: boolean;
  /** Hard cap on pages requested (default 1000). */
  maxPages?: number;
}

/** Why paging ended after a page; undefined while more pages follow. */
export type PageEnd = 'last' | 'empty' | 'maxPages';

export interface TcPage<T> {
  items: T[];
  /** 0-based page number. */
  index: number;
  /** The server's `count` (items in this page). */
  count: number | undefined;
  /** Set on the final page: `last` (no nextHref), `empty` (empty page, nextHref not followed), `maxPages` (cap hit, more existed). */
  end: PageEnd | undefined;
}

const DEFAULT_MAX_PAGES = 1000;
const API_ROUTE = /^(?:\/(?:httpAuth|guestAuth))?\/app\/rest(?:\/latest|\/\d+\.\d+)?(\/[A-Za-z]+)\/?$/;

type AttemptResult =
  | { kind: 'ok'; value: unknown }
  | { kind: 'notFound'; error: TeamCityNotFoundError }
  | { kind: 'retry'; reason: string; status?: number; retryAfterMs?: number; cause?: unknown };

// NUL and unpaired UTF-16 surrogates (which JSON can carry as `\u0000` / `\ud800` escapes) cannot be
// stored by PostgreSQL (text refuses NUL, jsonb refuses both): one such character in a branch name or a
// build number from a broken or hostile server would fail every poll of that server, forever. They are
// removed (NUL) or replaced by U+FFFD (lone surrogates) here, at the boundary, before anything uses them.
// eslint-disable-next-line no-control-regex
const UNSTORABLE_ESCAPE = /\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}|\u0000/;
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** JSON.parse for TeamCity responses: strings cleaned of what PostgreSQL cannot store (fast path when absent). */
export function parseTeamCityJson(text: string): unknown {
  if (!UNSTORABLE_ESCAPE.test(text)) return JSON.parse(text) as unknown;
  return JSON.parse(text, (_key, value: unknown) => (typeof value === 'string' ? value.replace(UNSTORABLE, (c) => (c === '\u0000' ? '' : '\ufffd')) : value)) as unknown;
}

function isAbsolute(href: string): boolean {
  return /^(?:[a-z][a-z0-9+.-]*:)?\/\//i.test(href);
}

/**
 * Turns a `nextHref` into the URL to request, or throws TeamCityProtocolError. Relative hrefs (path + query, as
 * TeamCity writes them, without the servlet context path) are re-based on `baseUrl` (context path kept); an
 * absolute href is accepted only on the base URL's origin (a context path in it is recognised); an auth
 * prefix (`/httpAuth`, `/guestAuth`) is dropped because we authenticate with a header. The path must be the
 * same collection endpoint (`/app/rest[/version]/builds|changes`); it is requested without the version segment.
 * The query is used exactly as sent — never
 * decoded and re-encoded — except that a literal `+` (unescaped by old servers in dates) becomes `%2B`.
 */
export function resolveNextHref(baseUrl: string, collectionPath: '/builds' | '/changes', href: string): string {
  const base = new URL(baseUrl);
  const contextPath = base.pathname.replace(/\/+$/, '');
  let rest: string;
  if (isAbsolute(href)) {
    let target: URL;
    try {
      target = new URL(href, base);
    } catch {
      throw new TeamCityProtocolError('TeamCity returned an invalid nextHref');
    }
    if (target.origin !== base.origin) {
      throw new TeamCityProtocolError(`TeamCity returned a nextHref on another origin (${target.host}); not followed`);
    }
    rest = href.replace(/^(?:[a-z][a-z0-9+.-]*:)?\/\/[^/?#]*/i, '');
  } else {
    rest = href;
  }
  if (!rest.startsWith('/')) throw new TeamCityProtocolError('TeamCity returned a nextHref that is not an absolute path; not followed');
  rest = rest.replace(/#.*$/s, '');
  const q = rest.indexOf('?');
  let path = q < 0 ? rest : rest.slice(0, q);
  let query = q < 0 ? '' : rest.slice(q);
  if (contextPath !== '' && path.startsWith(`${contextPath}/`) && API_ROUTE.test(path.slice(contextPath.length))) {
    path = path.slice(contextPath.length);
  }
  const m = API_ROUTE.exec(path);
  if (!m || m[1] !== collectionPath) {
    throw new TeamCityProtocolError(`TeamCity returned a nextHref outside /app/rest${collectionPath}; not followed`);
  }
  query = query.replace(/\+/g, '%2B');
  // A version segment (`/app/rest/latest/…`, `/app/rest/2018.1/…`) is dropped: we call only the
  // unversioned endpoints product.md lists (our requests are unversioned, so the resource is the same).
  return `${base.origin}${contextPath}/app/rest${collectionPath}${query}`;
}

/** A locator for a URL path segment: `: , $` kept readable, everything else percent-encoded; `/` and `\` refused. */
export function encodePathLocator(locator: string): string {
  if (locator === '') throw new RangeError('empty locator');
  if (/[/\\]/.test(locator)) {
    throw new RangeError('a locator in a URL path must not contain "/" or "\\": escape the value with pathLocatorValue()');
  }
  return encodeURIComponent(locator).replace(/%3A|%2C|%24/gi, (m) => decodeURIComponent(m));
}

function checkPageOptions(opts: PageOptions): void {
  if (opts.maxPages !== undefined && (!Number.isSafeInteger(opts.maxPages) || opts.maxPages < 1)) {
    throw new RangeError('maxPages must be a positive integer');
  }
}

function headerValue(h: string | string[] | undefined): string {
  return Array.isArray(h) ? h.join(', ') : (h ?? '');
}

function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class TeamCityClient {
  readonly baseUrl: string;
  readonly #authorization: string;
  readonly #dispatcher: Dispatcher;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #signal: AbortSignal | undefined;
  readonly #userAgent: string;

  constructor(opts: TeamCityClientOptions) {
    const allowHosts = opts.allowHosts ?? outboundAllowHostsOf(opts.dispatcher) ?? [];
    const url = assertOutboundUrl(opts.baseUrl, { allowHosts, ...(opts.allowHttp === undefined ? {} : { allowHttp: opts.allowHttp }) });
    if (url.search !== '' || url.hash !== '') throw new RangeError('TeamCity base URL must not have a query or fragment');
    this.baseUrl = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    this.#authorization = TeamCityClient.#authHeader(opts.auth);
    this.#dispatcher = opts.dispatcher;
    this.#log = opts.log.child({ component: 'teamcity-client', tcHost: url.host });
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#maxAttempts = Math.max(1, Math.floor(opts.maxAttempts ?? 4));
    this.#retryBaseMs = opts.retryBaseMs ?? 500;
    this.#retryMaxMs = opts.retryMaxMs ?? 10_000;
    this.#signal = opts.signal;
    this.#sleep = opts.sleep ?? ((ms) => delay(ms, undefined, this.#signal ? { signal: this.#signal } : {}));
    this.#random = opts.random ?? Math.random;
    this.#userAgent = opts.userAgent ?? 'teamcity-integration-for-jira';
    if (!(this.#timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
  }

  static #authHeader(auth: TeamCityAuth): string {
    const bad = /[\r\n\0]/;
    if (auth.type === 'basic') {
      if (auth.username.includes(':') || bad.test(auth.username) || bad.test(auth.password)) {
        throw new RangeError('TeamCity username must not contain ":" or line breaks');
      }
      registerSecret(auth.password);
      return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
    }
    if (auth.token.trim() === '' || /[\s\0]/.test(auth.token)) throw new RangeError('TeamCity access token must be non-empty without whitespace');
    registerSecret(auth.token);
    return `Bearer ${auth.token}`;
  }

  // ------------------------------------------------------------------------------------------------ endpoints

  /** `GET /app/rest/server`. */
  async getServer(): Promise<TcServer> {
    return (await this.#get('/app/rest/server', `/app/rest/server?fields=${encodeURIComponent(SERVER_FIELDS)}`)) as TcServer;
  }

  /** `GET /app/rest/server`, plus the server's clock offset/skew measured around the request. */
  async getServerClock(): Promise<{ server: TcServer; clock: ServerClock }> {
    const start = Date.now();
    const server = await this.getServer();
    const end = Date.now();
    if (server.currentTime === undefined) throw new TeamCityProtocolError('TeamCity /app/rest/server has no currentTime', { endpoint: '/app/rest/server' });
    return { server, clock: serverClockFrom(server.currentTime, start, end) };
  }

  /** `GET /app/rest/users/current`: the account the credentials belong to — the cheap credentials check. */
  async getCurrentUser(): Promise<TcUser> {
    return (await this.#get('/app/rest/users/{userLocator}', `/app/rest/users/current?fields=${encodeURIComponent(USER_FIELDS)}`)) as TcUser;
  }

  /** `GET /app/rest/users/{userLocator}`; undefined on 404 (no such user, or no permission to view users). */
  async getUser(locator: string): Promise<TcUser | undefined> {
    return (await this.#get('/app/rest/users/{userLocator}', `/app/rest/users/${encodePathLocator(locator)}?fields=${encodeURIComponent(USER_FIELDS)}`, true)) as
      | TcUser
      | undefined;
  }

  /** `GET /app/rest/buildTypes/{btLocator}` (e.g. buildTypeIdLocator(id)); undefined on 404 (deleted, renamed or invisible). */
  async getBuildType(locator: string, fields: string = BUILD_TYPE_FIELDS): Promise<TcBuildTypeDetails | undefined> {
    return (await this.#get(
      '/app/rest/buildTypes/{btLocator}',
      `/app/rest/buildTypes/${encodePathLocator(locator)}?fields=${encodeURIComponent(fields)}`,
      true,
    )) as TcBuildTypeDetails | undefined;
  }

  /** `GET /app/rest/builds/id:N`; undefined on 404 (deleted, or not visible to the account). */
  async getBuild(id: number, fields: string = buildFields()): Promise<TcBuild | undefined> {
    return (await this.#get(
      '/app/rest/builds/{buildLocator}',
      `/app/rest/builds/${encodePathLocator(buildIdLocator(id))}?fields=${encodeURIComponent(fields)}`,
      true,
    )) as TcBuild | undefined;
  }

  /** `GET /app/rest/builds?locator=…&fields=…`, page by page (see locator.ts for the queries, PageOptions for stopping). */
  builds(locator: string, fields: string = buildsPageFields(), opts: PageOptions = {}): AsyncGenerator<TcPage<TcBuild>, void, undefined> {
    checkPageOptions(opts);
    const first = `/app/rest/builds?locator=${encodeURIComponent(locator)}&fields=${encodeURIComponent(fields)}`;
    return this.#paginate<TcBuild>('/app/rest/builds', '/builds', first, 'build', opts);
  }

  /**
   * `GET /app/rest/changes?locator=build:(id:N),count:C&fields=…`: the changes TeamCity detected for a build,
   * newest change id first, page by page. An unknown build is a TeamCityNotFoundError.
   */
  changes(buildId: number, fields: string = CHANGES_PAGE_FIELDS, opts: PageOptions & { count?: number } = {}): AsyncGenerator<TcPage<TcChange>, void, undefined> {
    checkPageOptions(opts);
    const locator = changesOfBuildLocator(buildId, opts.count ?? 200);
    const first = `/app/rest/changes?locator=${encodeURIComponent(locator)}&fields=${encodeURIComponent(fields)}`;
    return this.#paginate<TcChange>('/app/rest/changes', '/changes', first, 'change', opts);
  }

  /** Every change of a build (all pages). */
  async allChanges(buildId: number, fields: string = CHANGES_PAGE_FIELDS): Promise<TcChange[]> {
    const out: TcChange[] = [];
    for await (const page of this.changes(buildId, fields)) out.push(...page.items);
    return out;
  }

  // ------------------------------------------------------------------------------------------------ paging

  async *#paginate<T>(
    endpoint: TcEndpoint,
    collectionPath: '/builds' | '/changes',
    firstPathAndQuery: string,
    itemKey: 'build' | 'change',
    opts: PageOptions,
  ): AsyncGenerator<TcPage<T>, void, undefined> {
    const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
    const stopOnEmpty = opts.stopOnEmptyPage ?? true;
    let url = `${this.baseUrl}${firstPathAndQuery}`;
    const seen = new Set<string>();
    for (let index = 0; ; index++) {
      seen.add(url);
      const body = (await this.#request(endpoint, url)) as Record<string, unknown>;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new TeamCityProtocolError(`TeamCity ${endpoint} did not return an object`, { endpoint });
      }
      const raw = body[itemKey];
      if (raw !== undefined && !Array.isArray(raw)) throw new TeamCityProtocolError(`TeamCity ${endpoint}: "${itemKey}" is not a list`, { endpoint });
      const items = (raw ?? []) as T[];
      const count = typeof body.count === 'number' ? body.count : undefined;
      const nextHref = typeof body.nextHref === 'string' && body.nextHref !== '' ? body.nextHref : undefined;
      let end: PageEnd | undefined;
      let next: string | undefined;
      if (nextHref === undefined) end = 'last';
      else if (items.length === 0 && stopOnEmpty) end = 'empty';
      else if (index + 1 >= maxPages) end = 'maxPages';
      else {
        next = resolveNextHref(this.baseUrl, collectionPath, nextHref);
        if (seen.has(next)) throw new TeamCityProtocolError(`TeamCity ${endpoint}: nextHref repeats an earlier page`, { endpoint });
      }
      if (end === 'maxPages' || end === 'empty') {
        this.#log.info({ endpoint, pages: index + 1, end }, 'teamcity paging stopped before the last page');
      }
      yield { items, index, count, end };
      if (next === undefined) return;
      url = next;
    }
  }

  // ------------------------------------------------------------------------------------------------ HTTP

  async #get(endpoint: TcEndpoint, pathAndQuery: string, notFoundAsUndefined = false): Promise<unknown> {
    return this.#request(endpoint, `${this.baseUrl}${pathAndQuery}`, notFoundAsUndefined);
  }

  async #request(endpoint: TcEndpoint, url: string, notFoundAsUndefined = false): Promise<unknown> {
    let last: Extract<AttemptResult, { kind: 'retry' }> | undefined;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      if (attempt > 1) {
        const exp = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (attempt - 2));
        let wait = Math.round(exp * (0.5 + 0.5 * this.#random()));
        if (last?.retryAfterMs !== undefined) wait = Math.min(this.#retryMaxMs, Math.max(wait, last.retryAfterMs));
        this.#log.warn({ endpoint, attempt: attempt - 1, reason: last?.reason, status: last?.status, retryInMs: wait }, 'teamcity request failed; retrying');
        await this.#sleep(wait);
      }
      this.#signal?.throwIfAborted();
      const r = await this.#attempt(endpoint, url, attempt);
      if (r.kind === 'ok') return r.value;
      if (r.kind === 'notFound') {
        if (notFoundAsUndefined) return undefined;
        throw r.error;
      }
      last = r;
    }
    const l = last!;
    throw new TeamCityUnavailableError(`TeamCity unavailable: ${l.reason} (after ${this.#maxAttempts} attempts)`, this.#maxAttempts, {
      endpoint,
      ...(l.status === undefined ? {} : { status: l.status }),
      cause: l.cause,
    });
  }

  async #attempt(endpoint: TcEndpoint, url: string, attempt: number): Promise<AttemptResult> {
    const started = performance.now();
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error('timeout'));
    }, this.#timeoutMs);
    const signal = this.#signal ? AbortSignal.any([ac.signal, this.#signal]) : ac.signal;
    let status: number | undefined;
    let observed = false;
    const done = (statusLabel: string): void => {
      observed = true;
      const ms = performance.now() - started;
      teamcityRequestSeconds.observe({ endpoint, method: 'GET', status: statusLabel }, ms / 1000);
      this.#log.debug({ endpoint, method: 'GET', status: statusLabel, ms: Math.round(ms), attempt }, 'teamcity request');
    };
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: this.#dispatcher,
        signal,
        headers: {
          accept: 'application/json',
          authorization: this.#authorization,
          'user-agent': this.#userAgent,
        },
      });
      status = res.statusCode;
      const contentType = headerValue(res.headers['content-type']);
      const text = await res.body.text();
      done(String(status));
      return this.#interpret(endpoint, status, contentType, text, headerValue(res.headers['retry-after']));
    } catch (e) {
      // A response that did not arrive complete (timeout, reset mid-body) counts as "error".
      if (!observed) done('error');
      if (e instanceof TeamCityHttpError || e instanceof TeamCityProtocolError) throw e;
      if (e instanceof OutboundBlockedError) throw e;
      if (this.#signal?.aborted && !timedOut) throw this.#signal.reason;
      const code = errorCode(e);
      if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
        throw new TeamCityProtocolError('TeamCity response exceeded the size limit', { endpoint, ...(status === undefined ? {} : { status }) });
      }
      if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        return { kind: 'retry', reason: `timeout after ${this.#timeoutMs} ms`, cause: e };
      }
      if (code === 'UND_ERR_INVALID_ARG') throw e;
      return { kind: 'retry', reason: `network error${code ? ` (${code})` : ''}`, cause: e };
    } finally {
      clearTimeout(timer);
    }
  }

  #interpret(endpoint: TcEndpoint, status: number, contentType: string, text: string, retryAfter: string): AttemptResult {
    const ctx = { endpoint };
    if (status >= 200 && status < 300) {
      const ct = contentType.toLowerCase();
      const start = text.trimStart();
      if (ct.includes('html') || /^<(!doctype|html|head|body)/i.test(start)) {
        throw new TeamCityProtocolError(
          'TeamCity answered with an HTML page instead of JSON (a login page or a proxy in front of TeamCity?): check the server URL and that the credentials are accepted by the REST API',
          { ...ctx, status },
        );
      }
      if (!ct.includes('json') && !start.startsWith('{')) {
        throw new TeamCityProtocolError(`TeamCity answered with ${contentType.split(';')[0] || 'no content type'} instead of JSON`, { ...ctx, status });
      }
      try {
        return { kind: 'ok', value: parseTeamCityJson(text) };
      } catch (e) {
        throw new TeamCityProtocolError(`TeamCity answered with malformed JSON (${Buffer.byteLength(text)} bytes)`, { ...ctx, status, cause: e });
      }
    }
    if (status >= 300 && status < 400) {
      throw new TeamCityProtocolError(
        `TeamCity answered with a redirect (HTTP ${status}), not followed: check the server URL (a login page or another host?)`,
        { ...ctx, status },
      );
    }
    const message = parseErrorBody(status, text, contentType);
    if (status === 401) throw new TeamCityAuthError(message, ctx);
    if (status === 403) throw new TeamCityForbiddenError(message, ctx);
    if (status === 404) return { kind: 'notFound', error: new TeamCityNotFoundError(message, ctx) };
    if (status >= 500 && status !== 501 && status !== 505) {
      const secs = /^\d{1,6}$/.test(retryAfter.trim()) ? Number(retryAfter.trim()) * 1000 : undefined;
      return {
        kind: 'retry',
        reason: `HTTP ${status} ${reasonPhrase(status)}: ${message}`,
        status,
        ...(secs === undefined ? {} : { retryAfterMs: secs }),
      };
    }
    throw new TeamCityHttpError(status, message, ctx);
  }
}
