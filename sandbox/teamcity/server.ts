// HTTP front of the simulator: auth (reference §1), content negotiation and errors (§1.5), the six endpoints,
// paging links (§5.1), fault injection and request recording.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { Fields } from './fields.ts';
import { FaultController } from './faults.ts';
import type { FaultKind } from './faults.ts';
import {
  HttpError,
  LOGIN_PAGE_HTML,
  UNAUTHORIZED_BODY,
  humanReadableEncode,
  notFound,
  renderError,
  toXml,
} from './format.ts';
import type { ErrorFormat } from './format.ts';
import { LocatorError, setDimension } from './locator.ts';
import { SUPERUSER, TeamCityModel } from './model.ts';
import type { User } from './model.ts';
import { findBuild, findBuildType, findBuilds, findChanges, findUser } from './query.ts';
import type { PagedResult } from './query.ts';
import { renderBuild, renderBuildType, renderBuilds, renderChanges, renderServer, renderUser } from './render.ts';
import type { PageLinks, RenderCtx, ServerInfo } from './render.ts';
import { generateHistory } from './generate.ts';
import type { GenerateOptions, GenerateResult } from './generate.ts';

export interface SimulatorOptions {
  /** default 0 (ephemeral) */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** display version, e.g. `2019.2.4`, `2023.05.4`, `2025.11.2` (default `2025.11.2`) */
  version?: string;
  /** TeamCity build number of the server (default derived from the version) */
  buildNumber?: string;
  /** REST-plugin error body format; default: `structured2025` for versionMajor ≥ 2025, else `text2023` */
  errorFormat?: ErrorFormat;
  /** server JVM time zone as fixed UTC offset (dates render `…+0300`); default 0 */
  utcOffsetMinutes?: number;
  /** server root URL setting used in webUrl (default: the URL the simulator listens on) */
  rootUrl?: string;
  /** `legacy` = viewLog.html / viewType.html links, `new` = /buildConfiguration/… (default: new for ≥ 2024) */
  webUrlStyle?: 'legacy' | 'new';
  /** virtual clock start (default 2025-06-02T09:00:00Z) */
  startTime?: number | string | Date;
  /** clock follows real time (plus advance()) instead of being purely virtual */
  realTime?: boolean;
  /** seed for token values and probabilistic faults */
  seed?: number;
  /** `/guestAuth/app/rest` works (guest sees everything) — default false */
  guestEnabled?: boolean;
  /** superuser (empty username) password — default none (superuser login disabled) */
  superuserPassword?: string;
  /** default admin account (sees everything, may view users); `null` = none. Default admin/admin */
  admin?: { username: string; password: string } | null;
  /** server UUID (`internalId` in /server) */
  internalId?: string;
}

export interface RecordedRequest {
  method: string;
  /** path without query, as sent (including `/httpAuth` prefix) */
  path: string;
  rawQuery: string;
  query: Record<string, string>;
  /** `basic` | `bearer` | `guest` | `none`; username as claimed (basic) or token owner; authenticated = credentials valid */
  auth: { scheme: 'basic' | 'bearer' | 'guest' | 'none'; username: string | null; authenticated: boolean };
  /** endpoint name, or null when the path is not one the simulator serves (404) */
  endpoint: string | null;
  status: number | null;
  fault: FaultKind | null;
  /** virtual time when received */
  at: number;
}

export interface TeamCitySimulator {
  url: string;
  port: number;
  /** server state + script API (projects, build types, users, tokens, builds, changes, clock) */
  model: TeamCityModel;
  faults: FaultController;
  options: Readonly<Required<Pick<SimulatorOptions, 'version' | 'utcOffsetMinutes'>>> & { errorFormat: ErrorFormat };
  /** switch the error body format at runtime */
  setErrorFormat(f: ErrorFormat): void;
  generateHistory(opts: GenerateOptions): GenerateResult;
  advance(ms: number): void;
  requests(): RecordedRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

const DEFAULT_START = Date.UTC(2025, 5, 2, 9, 0, 0);

function versionInfo(version: string, buildNumber: string | undefined, startTime: number, internalId: string | undefined): ServerInfo {
  const m = /^(\d{4})\.(\d+)/.exec(version);
  const major = m ? Number(m[1]) : 2025;
  const minor = m ? Number(m[2]) : 0;
  const bn = buildNumber ?? String(major * 100 + minor * 7 - 130_000 + 63_000);
  return {
    version: `${version} (build ${bn})`,
    versionMajor: major,
    versionMinor: minor,
    buildNumber: bn,
    buildDate: Date.UTC(major, Math.max(0, minor - 1), 1),
    startTime,
    internalId: internalId ?? 'f5f45726-88a4-4366-b340-563da2e51407',
  };
}

type Negotiated = 'json' | 'xml';

/** Accept negotiation; endpoints produce XML (first) and JSON. `null` → 406. */
export function negotiate(accept: string | undefined): Negotiated | null {
  if (!accept || accept.trim() === '') return 'xml';
  let best: { kind: Negotiated; q: number } | null = null;
  for (const part of accept.split(',')) {
    const [typeRaw, ...params] = part.trim().split(';');
    const type = (typeRaw ?? '').trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k === 'q' && v !== undefined) q = Number(v);
    }
    if (!(q > 0)) continue;
    let kind: Negotiated | null = null;
    if (type === 'application/json') kind = 'json';
    else if (type === 'application/xml' || type === 'text/xml' || type === '*/*' || type === 'application/*') kind = 'xml';
    if (kind && (best === null || q > best.q)) best = { kind, q };
  }
  return best?.kind ?? null;
}

const ROUTE = /^\/(?:(httpAuth|guestAuth)\/)?app\/rest(?:\/(latest|\d+\.\d+))?(\/.*)?$/;

export async function startTeamCitySimulator(options: SimulatorOptions = {}): Promise<TeamCitySimulator> {
  const startTime =
    options.startTime === undefined
      ? DEFAULT_START
      : options.startTime instanceof Date
        ? options.startTime.getTime()
        : typeof options.startTime === 'string'
          ? Date.parse(options.startTime)
          : options.startTime;
  const model = new TeamCityModel({
    startTime,
    realTime: options.realTime ?? false,
    seed: options.seed ?? 1,
    superuserPassword: options.superuserPassword ?? null,
  });
  const version = options.version ?? '2025.11.2';
  const info = versionInfo(version, options.buildNumber, startTime, options.internalId);
  let errorFormat: ErrorFormat = options.errorFormat ?? (info.versionMajor >= 2025 ? 'structured2025' : 'text2023');
  const utcOffsetMinutes = options.utcOffsetMinutes ?? 0;
  const newUi = options.webUrlStyle ? options.webUrlStyle === 'new' : info.versionMajor >= 2024;
  const guest: User = {
    id: 0,
    username: 'guest',
    name: 'Guest',
    password: null,
    viewProjects: 'all',
    canViewUsers: false,
    viewRuntimeData: false,
  };
  if (options.admin !== null) {
    const a = options.admin ?? { username: 'admin', password: 'admin' };
    model.addUser({ username: a.username, password: a.password, name: 'Administrator', canViewUsers: true, email: `${a.username}@example.com` });
  }
  const faults = new FaultController(options.seed ?? 1);
  const log: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  let rootUrl = options.rootUrl ?? '';

  function authenticate(req: http.IncomingMessage, prefix: string | undefined): { rec: RecordedRequest['auth']; user: User | null } {
    if (prefix === 'guestAuth') {
      return { rec: { scheme: 'guest', username: 'guest', authenticated: options.guestEnabled === true }, user: options.guestEnabled ? guest : null };
    }
    const h = req.headers.authorization;
    if (!h) return { rec: { scheme: 'none', username: null, authenticated: false }, user: null };
    const sp = h.indexOf(' ');
    const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase();
    const cred = sp < 0 ? '' : h.slice(sp + 1).trim();
    if (scheme === 'bearer') {
      const u = model.userByToken(cred) ?? null;
      return { rec: { scheme: 'bearer', username: u?.username ?? null, authenticated: u !== null }, user: u };
    }
    if (scheme === 'basic') {
      const decoded = Buffer.from(cred, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const username = colon < 0 ? decoded : decoded.slice(0, colon);
      const password = colon < 0 ? '' : decoded.slice(colon + 1);
      let user: User | null = null;
      if (username === '') {
        if (model.superuserPassword !== null && password === model.superuserPassword) user = SUPERUSER;
        else user = model.userByToken(password) ?? null; // `curl -u ":$TOKEN"`
      } else {
        const u = model.findUserByName(username);
        if (u && ((u.password !== null && u.password === password) || model.userByToken(password) === u)) user = u;
      }
      return { rec: { scheme: 'basic', username: username === '' ? (user?.username ?? '') : username, authenticated: user !== null }, user };
    }
    return { rec: { scheme: 'none', username: null, authenticated: false }, user: null };
  }

  function send401(res: http.ServerResponse): void {
    res.statusCode = 401;
    res.setHeader('TeamCity-Node-Id', 'MAIN_SERVER');
    res.setHeader('WWW-Authenticate', ['Basic realm="TeamCity"', 'Bearer realm="TeamCity"']);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', 'text/plain;charset=UTF-8');
    res.write(UNAUTHORIZED_BODY);
    res.end();
  }

  function sendError(res: http.ServerResponse, err: HttpError | LocatorError, wantJson: boolean): void {
    const status = err.status;
    const body = renderError(status, err.message, err.exceptionClass, errorFormat, wantJson);
    res.statusCode = status;
    res.setHeader('TeamCity-Node-Id', 'MAIN_SERVER');
    res.setHeader('Content-Type', body.contentType);
    res.end(body.body);
  }

  function pageLinks(pathname: string, rawQuery: string, locatorText: string | null, r: PagedResult<unknown>): PageLinks {
    const href = rawQuery ? `${pathname}?${rawQuery}` : pathname;
    const withLocator = (loc: string): string => {
      const pairs = rawQuery ? rawQuery.split('&') : [];
      const enc = `locator=${humanReadableEncode(loc)}`;
      const i = pairs.findIndex((p) => p.startsWith('locator='));
      if (i >= 0) pairs[i] = enc;
      else pairs.push(enc);
      return `${pathname}?${pairs.join('&')}`;
    };
    const modified = (start: number, count: number | null, base: string | null): string => {
      const withStart = setDimension(base, 'start', start);
      return count === null ? withStart : setDimension(withStart, 'count', count);
    };
    const { start, count } = r;
    const actual = r.items.length;
    let next: string | undefined;
    let prev: string | undefined;
    if (start === null || start === 0) {
      if (count !== null && actual >= count) next = withLocator(modified(count, count, locatorText));
    } else if (count === null) {
      prev = withLocator(modified(0, start, locatorText));
    } else {
      if (actual >= count) next = withLocator(modified(start + count, count, locatorText));
      prev = withLocator(start - count < 0 ? modified(0, start, locatorText) : modified(start - count, count, locatorText));
    }
    if (r.lookupLimit !== null && r.lookupLimitReached) {
      // PagerDataImpl.adjustLookupLimitForNextPage: ×2, at most +5000 per step
      const cur = r.lookupLimit;
      const step = Math.min(Math.round(cur * 2) - cur, 5000);
      const nextLimit = cur < 1 ? cur + 1 : cur + Math.max(1, step);
      const base = actual === 0 ? (locatorText ?? '') : modified((start ?? 0) + actual, count, locatorText);
      next = withLocator(setDimension(base === '' ? null : base, 'lookupLimit', nextLimit));
    }
    return { href, ...(next ? { nextHref: next } : {}), ...(prev ? { prevHref: prev } : {}) };
  }

  function handle(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, user: User, prefix: string | undefined, rest: string, kind: Negotiated): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    const rawQuery = url.search.startsWith('?') ? url.search.slice(1) : '';
    const ctx: RenderCtx = {
      model,
      rootUrl,
      prefix: prefix ? `/${prefix}` : '',
      utcOffsetMinutes,
      newUi,
      versionMajor: info.versionMajor,
      user,
    };
    const fieldsText = q.get('fields');
    const locatorText = q.get('locator');
    let root: string;
    let body: Record<string, unknown>;
    const seg = rest.split('/').filter((s, i) => i > 0 || s !== '');
    const one = (): string => decodeURIComponent(seg[1] ?? '');
    if (seg.length === 1 && seg[0] === 'server') {
      rec.endpoint = 'server';
      root = 'server';
      body = renderServer(ctx, info, Fields.parse(fieldsText, Fields.LONG));
    } else if (seg.length === 2 && seg[0] === 'buildTypes' && seg[1] !== '') {
      rec.endpoint = 'buildType';
      root = 'buildType';
      body = renderBuildType(ctx, findBuildType(model, user, one()), Fields.parse(fieldsText, Fields.LONG));
    } else if (seg.length === 2 && seg[0] === 'users' && seg[1] !== '') {
      rec.endpoint = 'user';
      root = 'user';
      body = renderUser(ctx, findUser(model, user, one()), Fields.parse(fieldsText, Fields.LONG));
    } else if (seg[0] === 'changes' && (seg.length === 1 || (seg.length === 2 && seg[1] === ''))) {
      rec.endpoint = 'changes';
      root = 'changes';
      const r = findChanges(model, user, locatorText ?? undefined);
      body = renderChanges(ctx, r.items, Fields.parse(fieldsText, Fields.LONG), pageLinks(url.pathname, rawQuery, locatorText, r), true);
    } else if (seg[0] === 'builds' && (seg.length === 1 || (seg.length === 2 && seg[1] === ''))) {
      rec.endpoint = 'builds';
      root = 'builds';
      const r = findBuilds(model, user, locatorText ?? undefined);
      body = renderBuilds(ctx, r.items, Fields.parse(fieldsText, Fields.LONG), pageLinks(url.pathname, rawQuery, locatorText, r));
    } else if (seg.length === 2 && seg[0] === 'builds') {
      rec.endpoint = 'build';
      root = 'build';
      body = renderBuild(ctx, findBuild(model, user, one()), Fields.parse(fieldsText, Fields.LONG));
    } else {
      // Jersey answers unknown resources with 404
      throw notFound(`Unable to find REST resource for '${url.pathname}' (not served by the simulator).`);
    }
    res.statusCode = 200;
    res.setHeader('TeamCity-Node-Id', 'MAIN_SERVER');
    if (kind === 'json') {
      res.setHeader('Content-Type', 'application/json;charset=UTF-8');
      res.end(JSON.stringify(body));
    } else {
      res.setHeader('Content-Type', 'application/xml;charset=UTF-8');
      res.end(toXml(root, body));
    }
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const m = ROUTE.exec(url.pathname);
      const prefix = m?.[1];
      const auth = authenticate(req, prefix);
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        rawQuery: url.search.startsWith('?') ? url.search.slice(1) : '',
        query: Object.fromEntries(url.searchParams),
        auth: auth.rec,
        endpoint: null,
        status: null,
        fault: null,
        at: model.now(),
      };
      log.push(rec);
      res.on('finish', () => {
        rec.status = res.statusCode;
      });
      if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs));
      const kind = negotiate(req.headers.accept);
      const wantJson = kind === 'json';
      const fault = faults.take(url.pathname);
      if (fault) {
        rec.fault = fault.kind;
        switch (fault.kind) {
          case 'hang':
            return; // never answered; close() destroys the socket
          case 'status': {
            const status = fault.status ?? 500;
            sendError(res, new HttpError(status, 'Simulated server error', 'java.lang.RuntimeException'), wantJson);
            return;
          }
          case 'htmlLogin':
            res.statusCode = 200;
            res.setHeader('Content-Type', 'text/html;charset=UTF-8');
            res.end(LOGIN_PAGE_HTML);
            return;
          case 'malformedJson': {
            const text = '{"count":2,"href":"/app/rest/builds","build":[{"id":1,"buildTypeId":"X","number":"1","status":"SUCC';
            res.statusCode = 200;
            res.setHeader('Content-Type', 'application/json;charset=UTF-8');
            res.end(text);
            return;
          }
          case 'reset': {
            const full = JSON.stringify({ count: 1, build: [{ id: 1, buildTypeId: 'X', number: '1', status: 'SUCCESS', state: 'finished' }] });
            res.statusCode = 200;
            res.setHeader('Content-Type', 'application/json;charset=UTF-8');
            res.setHeader('Content-Length', String(full.length));
            res.flushHeaders();
            res.write(full.slice(0, Math.floor(full.length / 2)), () => {
              setTimeout(() => req.socket.destroy(), 5);
            });
            return;
          }
        }
      }
      if (!auth.user) {
        send401(res);
        return;
      }
      try {
        if (!m) throw notFound(`Unable to find resource for '${url.pathname}'.`);
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          throw new HttpError(405, 'HTTP 405 Method Not Allowed', 'javax.ws.rs.NotAllowedException');
        }
        if (kind === null) throw new HttpError(406, 'HTTP 406 Not Acceptable', 'javax.ws.rs.NotAcceptableException');
        handle(req, res, rec, auth.user, prefix, m[3] ?? '', kind);
      } catch (e) {
        if (e instanceof HttpError || e instanceof LocatorError) sendError(res, e, wantJson);
        else {
          sendError(res, new HttpError(500, e instanceof Error ? e.message : String(e), 'java.lang.RuntimeException'), wantJson);
        }
      }
    })();
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  if (!rootUrl) rootUrl = url;

  const publicOptions = { version, utcOffsetMinutes, errorFormat };
  return {
    url,
    port,
    model,
    faults,
    options: publicOptions,
    setErrorFormat(f: ErrorFormat) {
      errorFormat = f;
      publicOptions.errorFormat = f;
    },
    generateHistory: (opts: GenerateOptions) => generateHistory(model, opts),
    advance: (ms: number) => model.advance(ms),
    requests: () => log.slice(),
    clearRequests: () => {
      log.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
