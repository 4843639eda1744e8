// Jira Cloud simulator: one HTTP server hosting any number of simulated sites, each at
// `<url>/sites/<name>` (a context path, stripped for QSH as §2.4 requires) or on a port of its own
// (no context path, exactly like `https://<site>.atlassian.net`), plus Atlassian's install-key server
// at `<url>/connect-install-keys/<kid>`. See sandbox/README.md "Jira Cloud simulator".
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { canonicalRequest, computeQsh, contextPathOf, parseRawQuery, sha256Hex, splitRawUrl } from './qsh.ts';
import { decodeJwt, hs256SignatureValid, signHs256, signNone, signRs256, tokenFromAuthorization, type JwtClaims } from './jwt.ts';
import { buildValidators, type EntityValidators } from './schema.ts';
import { Site, derive, type Descriptor, type Installation, type SiteSeed, type User } from './site.ts';
import { deleteByProperties, submitBuilds, submitDeployments, type ApiResult } from './entities.ts';
import { getIssue, getProject, permissionsCheck } from './platform.ts';
import { renderSitePage } from './page.ts';
import { contextTokenResponse, openPage, serveAllJs, type ShimHost, type ShimResponse } from './ap-shim.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

export type Scope = 'READ' | 'WRITE' | 'DELETE';

export interface SiteOptions {
  name: string;
  /** Projects, issues, users; default `defaultSiteSeed()`. */
  seed?: SiteSeed;
  /** Serve this site on a port of its own (baseUrl without a context path). */
  ownPort?: boolean;
}

export interface RateLimit {
  /** Bucket size (burst). */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  /** Retry-After to announce; default: time until one token is back (rounded up, ≥ 1 s). */
  retryAfterSeconds?: number;
}

export interface JiraSimulatorOptions {
  host?: string;
  port?: number;
  /** Seed for client keys, shared secrets, account ids. */
  seed?: string | number;
  /** Sites to create at start; default `['acme']`. */
  sites?: Array<string | SiteOptions>;
  /** Bodies above this size get 413; default 1 000 000 bytes. */
  maxRequestBytes?: number;
  /** Entities per bulk request above which 413 is returned; default 100. */
  maxEntitiesPerRequest?: number;
  /** Leeway for `exp` of app tokens; default 5 s. */
  clockSkewSeconds?: number;
  /** Clock (ms); default Date.now. */
  now?: () => number;
  /** Latency added to every site API response; default 0. */
  latencyMs?: number;
  /** Token bucket applied to every site; default none. */
  rateLimit?: RateLimit;
  /** Directory holding the Jira fixtures (OpenAPI); default ../../../shared/fixtures/jira/. */
  fixturesDir?: URL;
}

export type InstallFault =
  | 'unsigned' | 'alg-none' | 'hs256' | 'tampered-signature' | 'tampered-claims' | 'unknown-kid' | 'wrong-key'
  | 'wrong-aud' | 'wrong-iss' | 'wrong-qsh' | 'expired';

export interface LifecycleResult {
  event: 'installed' | 'uninstalled' | 'enabled' | 'disabled';
  url: string;
  /** The app answered 200 or 204. */
  ok: boolean;
  status: number;
  responseBody: string;
  token?: string;
  payload: Record<string, unknown>;
}

export interface InstallResult extends LifecycleResult {
  appKey: string;
  clientKey: string;
  sharedSecret: string;
  descriptor: Descriptor;
  fault?: InstallFault;
  enabled?: LifecycleResult;
}

export interface RecordedRequest {
  seq: number;
  at: number;
  kind: 'api' | 'keys' | 'ui' | 'unknown';
  site?: string;
  method: string;
  /** Path relative to the site's baseUrl (raw, as received). */
  path: string;
  rawUrl: string;
  query: Record<string, string[]>;
  operation?: string;
  claims?: JwtClaims;
  authError?: string;
  body?: unknown;
  status: number;
  response?: unknown;
  fault?: string;
  /** Why this call is not one the app may make (unknown endpoint, test-only endpoint). */
  unexpected?: string;
}

export interface FailSpec {
  status: number;
  count?: number;
  site?: string;
  method?: string;
  path?: string | RegExp;
  retryAfterSeconds?: number;
}

export interface FaultControls {
  /** The next `count` (default 1) matching site API requests get `status`. */
  failNext(spec: FailSpec): void;
  setLatency(ms: number, site?: string): void;
  setRateLimit(site: string, limit: RateLimit | null): void;
  clear(): void;
}

export interface TokenOptions {
  appKey?: string;
  /** Seconds until exp; default 180. */
  expiresIn?: number;
  context?: Record<string, unknown>;
}

export interface IframeOptions extends TokenOptions {
  moduleKey?: string;
  query?: Record<string, string>;
}

export interface JiraSimulator {
  url: string;
  /** Configure the app's CONNECT_INSTALL_KEYS_URL with this (`<keysUrl>/<kid>` serves the PEM). */
  keysUrl: string;
  /** The kid currently used to sign install callbacks. */
  readonly kid: string;
  siteUrl(name: string): string;
  site(name: string): Site;
  sites(): string[];
  addSite(options: string | SiteOptions): Promise<Site>;
  installApp(site: string, descriptorUrl: string, options?: { fault?: InstallFault; sendEnabled?: boolean; accountId?: string; installationId?: string }): Promise<InstallResult>;
  uninstallApp(site: string, appKey?: string, options?: { sendDisabled?: boolean; fault?: InstallFault }): Promise<LifecycleResult>;
  enableApp(site: string, appKey?: string): Promise<LifecycleResult>;
  disableApp(site: string, appKey?: string): Promise<LifecycleResult>;
  installation(site: string, appKey?: string): Installation | undefined;
  /** New install key pair with a new kid (Atlassian rotates keys with a new kid each time). */
  rotateInstallKey(): Promise<string>;
  /** Full URL of an app page as Jira's iframe loads it (`?jwt=` with qsh, sub = user). */
  iframeUrl(site: string, user: string | User, appPath: string, options?: IframeOptions): string;
  /** A context JWT (`qsh: "context-qsh"`) as `AP.context.getToken()` returns it. */
  contextToken(site: string, user: string | User, options?: TokenOptions): string;
  /** An HS256 token Jira would send to the app for `method appUrl` (webhook style). */
  jiraToken(site: string, method: string, appUrl: string, options?: TokenOptions & { user?: string | User }): string;
  requests(filter?: Partial<Pick<RecordedRequest, 'site' | 'method' | 'operation' | 'kind'>>): RecordedRequest[];
  unexpectedCalls(): RecordedRequest[];
  clearRequests(): void;
  faults: FaultControls;
  close(): Promise<void>;
}

interface Route {
  method: string;
  pattern: RegExp;
  operation: string;
  scope: Scope;
  module?: 'jiraBuildInfoProvider' | 'jiraDeploymentInfoProvider';
  api: 'devops' | 'platform';
  testOnly?: boolean;
}

const ROUTES: Route[] = [
  { method: 'POST', pattern: /^\/rest\/builds\/0\.1\/bulk$/, operation: 'submitBuilds', scope: 'WRITE', module: 'jiraBuildInfoProvider', api: 'devops' },
  { method: 'DELETE', pattern: /^\/rest\/builds\/0\.1\/bulkByProperties$/, operation: 'deleteBuildsByProperty', scope: 'DELETE', module: 'jiraBuildInfoProvider', api: 'devops' },
  { method: 'GET', pattern: /^\/rest\/builds\/0\.1\/pipelines\/([^/]+)\/builds\/([^/]+)$/, operation: 'getBuildByKey', scope: 'READ', module: 'jiraBuildInfoProvider', api: 'devops', testOnly: true },
  { method: 'POST', pattern: /^\/rest\/deployments\/0\.1\/bulk$/, operation: 'submitDeployments', scope: 'WRITE', module: 'jiraDeploymentInfoProvider', api: 'devops' },
  { method: 'DELETE', pattern: /^\/rest\/deployments\/0\.1\/bulkByProperties$/, operation: 'deleteDeploymentsByProperty', scope: 'DELETE', module: 'jiraDeploymentInfoProvider', api: 'devops' },
  { method: 'GET', pattern: /^\/rest\/deployments\/0\.1\/pipelines\/([^/]+)\/environments\/([^/]+)\/deployments\/([^/]+)$/, operation: 'getDeploymentByKey', scope: 'READ', module: 'jiraDeploymentInfoProvider', api: 'devops', testOnly: true },
  { method: 'POST', pattern: /^\/rest\/api\/3\/permissions\/check$/, operation: 'getBulkPermissions', scope: 'READ', api: 'platform' },
  { method: 'GET', pattern: /^\/rest\/api\/3\/issue\/([^/]+)$/, operation: 'getIssue', scope: 'READ', api: 'platform' },
  { method: 'GET', pattern: /^\/rest\/api\/3\/project\/([^/]+)$/, operation: 'getProject', scope: 'READ', api: 'platform' },
];

/** Connect scopes are hierarchical: ADMIN ⊃ PROJECT_ADMIN ⊃ DELETE ⊃ WRITE ⊃ READ. */
const SCOPE_ORDER = ['READ', 'WRITE', 'DELETE', 'PROJECT_ADMIN', 'ADMIN'];
function hasScope(scopes: unknown, required: Scope): boolean {
  if (!Array.isArray(scopes)) return false;
  const need = SCOPE_ORDER.indexOf(required);
  return scopes.some((s) => typeof s === 'string' && SCOPE_ORDER.indexOf(s.toUpperCase()) >= need);
}

function joinUrl(base: string, rel: string): string {
  if (/^https?:\/\//i.test(rel)) return rel;
  return base.replace(/\/+$/, '') + (rel.startsWith('/') ? rel : `/${rel}`);
}

function errorBody(api: 'devops' | 'platform', message: string): unknown {
  return api === 'devops' ? [{ message }] : { errorMessages: [message], errors: {} };
}

function queryRecord(q: Map<string, string[]>): Record<string, string[]> {
  return Object.fromEntries([...q.entries()].map(([k, v]) => [k, [...v]]));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function readBody(req: IncomingMessage, limit: number): Promise<{ text: string; tooLarge: boolean; bytes: number }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    bytes += b.length;
    if (bytes <= limit) chunks.push(b);
  }
  return { text: bytes <= limit ? Buffer.concat(chunks).toString('utf8') : '', tooLarge: bytes > limit, bytes };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

interface SiteEntry {
  site: Site;
  baseUrl: string;
  contextPath: string;
  server?: Server;
  bucket?: { limit: RateLimit; tokens: number; last: number };
  latencyMs?: number;
}

export async function startJiraSimulator(options: JiraSimulatorOptions = {}): Promise<JiraSimulator> {
  const host = options.host ?? '127.0.0.1';
  const seed = String(options.seed ?? 'jira-simulator');
  const now = options.now ?? (() => Date.now());
  const maxRequestBytes = options.maxRequestBytes ?? 1_000_000;
  const limits = { maxEntitiesPerRequest: options.maxEntitiesPerRequest ?? 100 };
  const skew = options.clockSkewSeconds ?? 5;
  const validators: EntityValidators = buildValidators(options.fixturesDir);

  const keys = new Map<string, string>(); // kid → PEM
  let signingKey: { kid: string; privateKey: KeyObject };
  let rogueKey: KeyObject | undefined;
  let keyGeneration = 0;
  const newKey = async (): Promise<string> => {
    const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
    const kid = `jira-sim-${derive(seed, `kid:${keyGeneration++}`, 16)}`;
    keys.set(kid, publicKey.export({ type: 'spki', format: 'pem' }).toString());
    signingKey = { kid, privateKey };
    return kid;
  };
  await newKey();

  const entries = new Map<string, SiteEntry>();
  const records: RecordedRequest[] = [];
  let seq = 0;
  const installCounts = new Map<string, number>();
  let failSpecs: Array<FailSpec & { remaining: number }> = [];
  let globalLatency = options.latencyMs ?? 0;

  const mainServer = createServer((req, res) => {
    handle(req, res, undefined).catch((err: unknown) => internalError(res, err));
  });
  const port = await listen(mainServer, options.port ?? 0, host);
  const url = `http://${host}:${port}`;

  function internalError(res: ServerResponse, err: unknown): void {
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ message: `simulator error: ${err instanceof Error ? err.message : String(err)}` }]));
    } else res.end();
  }

  function entry(name: string): SiteEntry {
    const e = entries.get(name);
    if (!e) throw new Error(`no such simulated site: ${name}`);
    return e;
  }

  async function addSite(opt: string | SiteOptions): Promise<Site> {
    const o: SiteOptions = typeof opt === 'string' ? { name: opt } : opt;
    if (!/^[a-z0-9][a-z0-9-]*$/.test(o.name)) throw new Error(`site name must be [a-z0-9-]: ${o.name}`);
    if (entries.has(o.name)) throw new Error(`site exists: ${o.name}`);
    const site = new Site(o.name, seed, o.seed);
    let e: SiteEntry;
    if (o.ownPort) {
      const server = createServer((req, res) => {
        handle(req, res, o.name).catch((err: unknown) => internalError(res, err));
      });
      const p = await listen(server, 0, host);
      e = { site, baseUrl: `http://${host}:${p}`, contextPath: '', server };
    } else {
      e = { site, baseUrl: `${url}/sites/${o.name}`, contextPath: `/sites/${o.name}` };
    }
    if (options.rateLimit) e.bucket = { limit: options.rateLimit, tokens: options.rateLimit.capacity, last: now() };
    entries.set(o.name, e);
    return site;
  }

  for (const s of options.sites ?? ['acme']) await addSite(s);

  function record(r: Omit<RecordedRequest, 'seq' | 'at'>): RecordedRequest {
    const rec: RecordedRequest = { seq: ++seq, at: now(), ...r };
    records.push(rec);
    return rec;
  }

  function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    if (body === undefined) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    if (typeof body === 'string') {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(body);
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
  }

  function sendShim(res: ServerResponse, r: ShimResponse): void {
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  }

  const shimHost: ShimHost = {
    siteByClientKey: (clientKey) => [...entries.values()].find((x) => x.site.clientKey === clientKey)?.site.name,
    site: (n) => entry(n).site,
    siteUrl: (n) => entry(n).baseUrl,
    contextToken: (n, user, o) => sim.contextToken(n, user, o),
    iframeUrl: (n, user, appPath, o) => sim.iframeUrl(n, user, appPath, o),
    now,
  };

  /** Verifies `Authorization: JWT` (or `?jwt=`) of an app call (reference §2.3, §2.4). */
  function verifyAppCall(
    e: SiteEntry, method: string, relPath: string, rawQuery: string, authHeader: string | undefined, query: Map<string, string[]>,
  ): { installation: Installation; claims: JwtClaims } | { error: string; claims?: JwtClaims } {
    const token = tokenFromAuthorization(authHeader) ?? query.get('jwt')?.[0];
    if (!token) return { error: authHeader ? 'Authorization header is not "JWT <token>"' : 'missing JWT (no Authorization: JWT header)' };
    const decoded = decodeJwt(token);
    if (!decoded) return { error: 'malformed JWT' };
    const { header, claims } = decoded;
    if (header.alg !== 'HS256') return { error: `alg must be HS256, got ${String(header.alg)}`, claims };
    const iss = claims['iss'];
    if (typeof iss !== 'string') return { error: 'iss claim missing', claims };
    const installation = e.site.installations.get(iss);
    if (!installation) {
      const hint = iss === e.site.clientKey ? ' (iss must be the app key, not the clientKey)' : '';
      return { error: `iss "${iss}" is not an app installed on this site${hint}`, claims };
    }
    if (!hs256SignatureValid(decoded, installation.sharedSecret)) return { error: 'signature does not verify with the shared secret of this installation', claims };
    const exp = claims['exp'];
    if (typeof exp !== 'number') return { error: 'exp claim missing', claims };
    const nowS = Math.floor(now() / 1000);
    if (nowS > exp + skew) return { error: `token expired at ${exp} (now ${nowS})`, claims };
    const iat = claims['iat'];
    if (iat !== undefined && (typeof iat !== 'number' || iat > nowS + skew + 60)) return { error: 'iat is invalid or in the future', claims };
    const qsh = claims['qsh'];
    const canonical = canonicalRequest(method, `${relPath}${rawQuery ? `?${rawQuery}` : ''}`);
    if (qsh === 'context-qsh') return { error: `context-qsh tokens are not accepted for REST calls (expected qsh of "${canonical}")`, claims };
    if (qsh !== sha256Hex(canonical)) return { error: `qsh mismatch: expected sha256("${canonical}")`, claims };
    const aud = claims['aud'];
    if (aud !== undefined) {
      const list = Array.isArray(aud) ? aud : [aud];
      if (!list.includes(e.site.clientKey)) return { error: `aud ${JSON.stringify(aud)} does not contain the clientKey`, claims };
    }
    if (!installation.enabled) return { error: 'the app is disabled on this site', claims };
    return { installation, claims };
  }

  function takeFault(siteName: string, method: string, relPath: string): FailSpec | undefined {
    const idx = failSpecs.findIndex(
      (f) =>
        (f.site === undefined || f.site === siteName) &&
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined || (typeof f.path === 'string' ? f.path === relPath : f.path.test(relPath))),
    );
    if (idx === -1) return undefined;
    const f = failSpecs[idx]!;
    f.remaining -= 1;
    if (f.remaining <= 0) failSpecs.splice(idx, 1);
    return f;
  }

  function rateLimited(e: SiteEntry): number | undefined {
    const b = e.bucket;
    if (!b) return undefined;
    const t = now();
    b.tokens = Math.min(b.limit.capacity, b.tokens + ((t - b.last) / 1000) * b.limit.refillPerSecond);
    b.last = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return undefined;
    }
    return b.limit.retryAfterSeconds ?? Math.max(1, Math.ceil((1 - b.tokens) / b.limit.refillPerSecond));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, fixedSite: string | undefined): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const { path, query: rawQuery } = splitRawUrl(rawUrl);
    const query = parseRawQuery(rawQuery);

    // Offline all.js shim and its context-token endpoint (ap-shim.ts), on every server of the simulator.
    if (method === 'GET' && (path === '/all.js' || path === '/_sim/context-token')) {
      record({ kind: 'ui', ...(fixedSite ? { site: fixedSite } : {}), method, path, rawUrl, query: queryRecord(query), status: 200 });
      return sendShim(res, path === '/all.js' ? serveAllJs() : contextTokenResponse(shimHost, query));
    }

    let siteName = fixedSite;
    let relPath = path;
    if (!fixedSite) {
      const keyMatch = /^\/connect-install-keys\/([^/]+)$/.exec(path);
      if (keyMatch && method === 'GET') {
        const pem = keys.get(decodeURIComponent(keyMatch[1]!));
        const status = pem ? 200 : 404;
        record({ kind: 'keys', method, path, rawUrl, query: queryRecord(query), status });
        if (!pem) return send(res, 404, { message: 'unknown kid' });
        res.writeHead(200, { 'content-type': 'application/x-pem-file' });
        res.end(pem);
        return;
      }
      if (path === '/' && method === 'GET') return send(res, 200, indexPage());
      const siteMatch = /^\/sites\/([^/]+)(\/.*)?$/.exec(path);
      const candidate = siteMatch ? entries.get(siteMatch[1]!) : undefined;
      if (!siteMatch || !candidate || candidate.server) {
        const body = await readBody(req, maxRequestBytes);
        record({ kind: 'unknown', method, path, rawUrl, query: queryRecord(query), body: body.text || undefined, status: 404, unexpected: 'not a simulated site or simulator route' });
        return send(res, 404, { errorMessages: ['No simulated site at this path'], errors: {} });
      }
      siteName = siteMatch[1]!;
      relPath = siteMatch[2] ?? '/';
    }
    const e = entry(siteName!);
    const name = e.site.name;

    // The site's own pages (demo UI): not part of the API surface, no auth.
    if (method === 'GET' && (relPath === '/browse' || relPath === '/' || relPath.startsWith('/browse/'))) {
      const issueKey = relPath.startsWith('/browse/') ? decodeURIComponent(relPath.slice('/browse/'.length)) : undefined;
      record({ kind: 'ui', site: name, method, path: relPath, rawUrl, query: queryRecord(query), status: 200 });
      const page = renderSitePage(e.site, e.baseUrl, issueKey);
      // `?refresh=N` reloads the page every N seconds (the demo watches builds arrive).
      const refresh = Number(query.get('refresh')?.[0]);
      const live = Number.isInteger(refresh) && refresh > 0 && refresh <= 3600 ? page.replace('<head>', `<head><meta http-equiv="refresh" content="${refresh}">`) : page;
      return send(res, 200, live);
    }
    // A Jira-like page framing an app page for a user, with a fresh iframe URL (ap-shim.ts).
    if (method === 'GET' && relPath === '/_sim/open') {
      const r = openPage(shimHost, name, query);
      record({ kind: 'ui', site: name, method, path: relPath, rawUrl, query: queryRecord(query), status: r.status });
      return sendShim(res, r);
    }

    const bodyRead = await readBody(req, maxRequestBytes);
    let parsedBody: unknown = bodyRead.text === '' ? undefined : bodyRead.text;
    let jsonError = false;
    if (bodyRead.text !== '') {
      try {
        parsedBody = JSON.parse(bodyRead.text) as unknown;
      } catch {
        jsonError = true;
      }
    }
    const base: Omit<RecordedRequest, 'seq' | 'at' | 'status'> = {
      kind: 'api', site: name, method, path: relPath, rawUrl, query: queryRecord(query),
      ...(parsedBody !== undefined ? { body: parsedBody } : {}),
    };

    const route = ROUTES.find((r) => r.method === method && r.pattern.test(relPath));
    if (!route) {
      const status = 404;
      const response = { errorMessages: ['The simulator does not offer this endpoint (and the app must not call it).'], errors: {} };
      record({ ...base, status, response, unexpected: `endpoint not in the allowed list: ${method} ${relPath}` });
      return send(res, status, response);
    }
    const params = (route.pattern.exec(relPath) ?? []).slice(1).map((s) => decodeURIComponent(s));
    const finish = async (status: number, response: unknown, extra: Partial<RecordedRequest> = {}, headers: Record<string, string> = {}): Promise<void> => {
      record({
        ...base, operation: route.operation, status, ...(response !== undefined ? { response } : {}),
        ...(route.testOnly ? { unexpected: `test-only endpoint ${route.operation} (the app must not call it)` } : {}),
        ...extra,
      });
      const latency = e.latencyMs ?? globalLatency;
      if (latency > 0) await sleep(latency);
      send(res, status, response, headers);
    };

    // Faults first, as an overloaded Jira answers before looking at the request.
    const fault = takeFault(name, method, relPath);
    if (fault) {
      const headers: Record<string, string> = {};
      if (fault.retryAfterSeconds !== undefined) {
        headers['retry-after'] = String(fault.retryAfterSeconds);
        headers['x-ratelimit-reset'] = new Date(now() + fault.retryAfterSeconds * 1000).toISOString();
      }
      if (fault.status === 429) headers['ratelimit-reason'] = 'jira-burst-based';
      const message = fault.status === 429 ? 'API rate limit has been exceeded.' : fault.status === 503 ? 'Service is unavailable.' : `Injected fault ${fault.status}`;
      return finish(fault.status, errorBody(route.api, message), { fault: `injected ${fault.status}` }, headers);
    }
    const retryAfter = rateLimited(e);
    if (retryAfter !== undefined) {
      return finish(429, errorBody(route.api, 'API rate limit has been exceeded.'), { fault: 'rate limit' }, {
        'retry-after': String(retryAfter),
        'x-ratelimit-reset': new Date(now() + retryAfter * 1000).toISOString(),
        'ratelimit-reason': 'jira-burst-based',
      });
    }

    const auth = verifyAppCall(e, method, relPath, rawQuery, req.headers.authorization, query);
    if ('error' in auth) {
      return finish(401, errorBody(route.api, `Unauthorized: ${auth.error}`), { authError: auth.error, ...(auth.claims ? { claims: auth.claims } : {}) });
    }
    const { installation, claims } = auth;
    const descriptor = installation.descriptor;
    if (route.module && (typeof descriptor.modules?.[route.module] !== 'object' || descriptor.modules[route.module] === null)) {
      return finish(403, errorBody(route.api, `The app does not define the ${route.module} module.`), { claims });
    }
    if (!hasScope(descriptor.scopes, route.scope)) {
      return finish(403, errorBody(route.api, `The app does not define the '${route.scope}' scope.`), { claims });
    }
    if (bodyRead.tooLarge) {
      return finish(413, errorBody(route.api, `Data is too large (${bodyRead.bytes} bytes > ${maxRequestBytes}). Submit fewer entities in each payload.`), { claims });
    }
    if (jsonError) return finish(400, errorBody(route.api, 'Request body is not valid JSON'), { claims });

    const appKey = installation.appKey;
    let result: ApiResult;
    switch (route.operation) {
      case 'submitBuilds':
        result = submitBuilds(e.site, appKey, parsedBody, validators, limits);
        break;
      case 'submitDeployments':
        result = submitDeployments(e.site, appKey, parsedBody, validators, limits);
        break;
      case 'deleteBuildsByProperty':
        result = deleteByProperties(e.site, appKey, 'builds', query);
        break;
      case 'deleteDeploymentsByProperty':
        result = deleteByProperties(e.site, appKey, 'deployments', query);
        break;
      case 'getBuildByKey': {
        const n = Number(params[1]);
        const b = Number.isSafeInteger(n) ? e.site.getBuild(params[0]!, n, appKey) : undefined;
        result = b ? { status: 200, body: b.data } : { status: 404, body: errorBody('devops', 'No build found for the given key') };
        break;
      }
      case 'getDeploymentByKey': {
        const n = Number(params[2]);
        const d = Number.isSafeInteger(n) ? e.site.getDeployment(params[0]!, params[1]!, n, appKey) : undefined;
        result = d ? { status: 200, body: d.data } : { status: 404, body: errorBody('devops', 'No deployment found for the given key') };
        break;
      }
      case 'getBulkPermissions':
        result = permissionsCheck(e.site, appKey, parsedBody, validators.permissionsRequest);
        break;
      case 'getIssue':
        result = getIssue(e.site, e.baseUrl, params[0]!, query);
        break;
      case 'getProject':
        result = getProject(e.site, e.baseUrl, params[0]!);
        break;
      default:
        result = { status: 500, body: errorBody(route.api, 'unrouted operation') };
    }
    return finish(result.status, result.body, { claims });
  }

  function indexPage(): string {
    const rows = [...entries.values()]
      .map((e) => `<li><a href="${e.baseUrl}/browse">${e.site.name}</a> — baseUrl <code>${e.baseUrl}</code>, clientKey <code>${e.site.clientKey}</code>, apps: ${[...e.site.installations.keys()].join(', ') || 'none'}</li>`)
      .join('');
    return `<!doctype html><html><head><meta charset="utf-8"><title>Jira Cloud simulator</title></head><body><h1>Jira Cloud simulator</h1><p>Install keys: <code>${url}/connect-install-keys</code></p><ul>${rows}</ul></body></html>`;
  }

  // ---- lifecycle (Jira → app) ----

  function resolveUser(site: Site, user: string | User | undefined): User | undefined {
    if (user === undefined) return undefined;
    if (typeof user !== 'string') return user;
    const u = site.user(user);
    if (!u) throw new Error(`unknown user on site ${site.name}: ${user}`);
    return u;
  }

  function getInstallation(siteName: string, appKey?: string): Installation {
    const site = entry(siteName).site;
    const inst = appKey ? site.installations.get(appKey) : [...site.installations.values()][0];
    if (!inst) throw new Error(`no app${appKey ? ` ${appKey}` : ''} installed on site ${siteName}`);
    return inst;
  }

  function lifecyclePayload(e: SiteEntry, appKey: string, event: LifecycleResult['event'], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      key: appKey,
      clientKey: e.site.clientKey,
      ...(extra['sharedSecret'] ? { sharedSecret: extra['sharedSecret'] } : {}),
      serverVersion: '100294',
      pluginsVersion: '1001.0.0-SNAPSHOT.f0d6e1b5c9a2',
      baseUrl: e.baseUrl,
      displayUrl: e.baseUrl,
      productType: 'jira',
      description: `Atlassian JIRA at ${e.baseUrl}`,
      eventType: event,
      oauthClientId: derive(seed, `oauthClientId:${e.site.name}:${appKey}`, 32),
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'sharedSecret')),
    };
  }

  async function rogue(): Promise<KeyObject> {
    if (!rogueKey) rogueKey = (await generateKeyPairAsync('rsa', { modulusLength: 2048 })).privateKey;
    return rogueKey;
  }

  /** RS256 install/uninstall token (reference §2.2), or a deliberately broken one. */
  async function installToken(target: string, descriptor: Descriptor, clientKey: string, sharedSecret: string, accountId: string | undefined, fault?: InstallFault): Promise<string | undefined> {
    const iat = Math.floor(now() / 1000);
    const ctx = contextPathOf(descriptor.baseUrl);
    const claims: JwtClaims = {
      iss: clientKey,
      ...(accountId ? { sub: accountId } : {}),
      aud: descriptor.baseUrl,
      qsh: computeQsh('POST', target, ctx),
      iat,
      exp: iat + 180,
      context: {},
    };
    switch (fault) {
      case undefined:
        return signRs256(claims, signingKey.privateKey, signingKey.kid);
      case 'unsigned':
        return undefined;
      case 'alg-none':
        return signNone(claims);
      case 'hs256':
        return signHs256(claims, sharedSecret, { kid: signingKey.kid });
      case 'tampered-signature': {
        const t = signRs256(claims, signingKey.privateKey, signingKey.kid);
        const sig = Buffer.from(t.slice(t.lastIndexOf('.') + 1), 'base64url');
        sig[0] = (sig[0] ?? 0) ^ 0xff;
        return `${t.slice(0, t.lastIndexOf('.'))}.${sig.toString('base64url')}`;
      }
      case 'tampered-claims': {
        const t = signRs256(claims, signingKey.privateKey, signingKey.kid);
        const [h, , s] = t.split('.');
        const forged = Buffer.from(JSON.stringify({ ...claims, exp: iat + 86400 * 365 })).toString('base64url');
        return `${h}.${forged}.${s}`;
      }
      case 'unknown-kid':
        return signRs256(claims, await rogue(), `rogue-${derive(seed, 'rogue-kid', 12)}`);
      case 'wrong-key':
        return signRs256(claims, await rogue(), signingKey.kid);
      case 'wrong-aud':
        return signRs256({ ...claims, aud: 'https://not-this-app.example.com' }, signingKey.privateKey, signingKey.kid);
      case 'wrong-iss':
        return signRs256({ ...claims, iss: `${clientKey.slice(0, -4)}beef` }, signingKey.privateKey, signingKey.kid);
      case 'wrong-qsh':
        return signRs256({ ...claims, qsh: computeQsh('POST', '/some/other/path', '') }, signingKey.privateKey, signingKey.kid);
      case 'expired':
        return signRs256({ ...claims, iat: iat - 900, exp: iat - 600 }, signingKey.privateKey, signingKey.kid);
    }
  }

  function hs256JiraToken(inst: Installation, clientKey: string, method: string, appUrl: string, o: TokenOptions & { sub?: string; qsh?: string } = {}): string {
    const iat = Math.floor(now() / 1000);
    const target = joinUrl(inst.descriptor.baseUrl, appUrl);
    return signHs256(
      {
        iss: clientKey,
        ...(o.sub ? { sub: o.sub } : {}),
        qsh: o.qsh ?? computeQsh(method, target, contextPathOf(inst.descriptor.baseUrl)),
        iat,
        exp: iat + (o.expiresIn ?? 180),
        context: o.context ?? {},
      },
      inst.sharedSecret,
    );
  }

  async function post(target: string, token: string | undefined, payload: Record<string, unknown>): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (token !== undefined) headers['authorization'] = `JWT ${token}`;
    const r = await fetch(target, { method: 'POST', headers, body: JSON.stringify(payload), redirect: 'manual' });
    return { status: r.status, text: await r.text() };
  }

  async function fetchDescriptor(descriptorUrl: string): Promise<Descriptor> {
    const r = await fetch(descriptorUrl, { headers: { accept: 'application/json' } });
    if (!r.ok) throw new Error(`descriptor fetch ${descriptorUrl} failed: HTTP ${r.status}`);
    const d = (await r.json()) as Descriptor;
    const problems: string[] = [];
    if (typeof d.key !== 'string' || !/^[a-zA-Z0-9-._]{1,64}$/.test(d.key)) problems.push('key missing or invalid (≤ 64 chars)');
    if (typeof d.baseUrl !== 'string' || !URL.canParse(d.baseUrl)) problems.push('baseUrl missing or not a URL');
    const authType = (d['authentication'] as { type?: string } | undefined)?.type;
    if (typeof authType !== 'string' || authType.toLowerCase() !== 'jwt') problems.push('authentication.type must be "jwt"');
    if (typeof d.lifecycle?.installed !== 'string') problems.push('lifecycle.installed missing');
    if (problems.length) throw new Error(`invalid descriptor at ${descriptorUrl}: ${problems.join('; ')}`);
    return d;
  }

  async function sendHs256Lifecycle(siteName: string, appKey: string | undefined, event: 'enabled' | 'disabled'): Promise<LifecycleResult> {
    const e = entry(siteName);
    const inst = getInstallation(siteName, appKey);
    inst.enabled = event === 'enabled';
    const rel = inst.descriptor.lifecycle?.[event];
    const payload = lifecyclePayload(e, inst.appKey, event);
    if (!rel) return { event, url: '', ok: true, status: 0, responseBody: '', payload };
    const target = joinUrl(inst.descriptor.baseUrl, rel);
    const token = hs256JiraToken(inst, e.site.clientKey, 'POST', target);
    const r = await post(target, token, payload);
    return { event, url: target, ok: r.status === 200 || r.status === 204, status: r.status, responseBody: r.text, token, payload };
  }

  const sim: JiraSimulator = {
    url,
    keysUrl: `${url}/connect-install-keys`,
    get kid() {
      return signingKey.kid;
    },
    siteUrl: (name) => entry(name).baseUrl,
    site: (name) => entry(name).site,
    sites: () => [...entries.keys()],
    addSite,

    async installApp(siteName, descriptorUrl, o = {}) {
      const e = entry(siteName);
      const descriptor = await fetchDescriptor(descriptorUrl);
      const countKey = `${siteName}\u0000${descriptor.key}`;
      const n = (installCounts.get(countKey) ?? 0) + 1;
      installCounts.set(countKey, n);
      // A new shared secret on every (re)install (reference §2.1).
      const sharedSecret = e.site.nextSharedSecret(descriptor.key, n);
      const accountId = o.accountId ?? e.site.siteAdmin()?.accountId;
      const payload = lifecyclePayload(e, descriptor.key, 'installed', {
        sharedSecret,
        ...(accountId ? { accountId } : {}),
        ...(o.installationId ? { installationId: o.installationId } : {}),
      });
      const target = joinUrl(descriptor.baseUrl, descriptor.lifecycle!.installed!);
      const token = await installToken(target, descriptor, e.site.clientKey, sharedSecret, accountId, o.fault);
      const r = await post(target, token, payload);
      const ok = r.status === 200 || r.status === 204;
      const result: InstallResult = {
        event: 'installed', url: target, ok, status: r.status, responseBody: r.text, ...(token ? { token } : {}), payload,
        appKey: descriptor.key, clientKey: e.site.clientKey, sharedSecret, descriptor, ...(o.fault ? { fault: o.fault } : {}),
      };
      // A forged install never creates an installation, whatever the app answered.
      if (ok && !o.fault) {
        e.site.installations.set(descriptor.key, {
          appKey: descriptor.key, clientKey: e.site.clientKey, sharedSecret, descriptor, descriptorUrl, enabled: true, installedAt: now(),
        });
        if (o.sendEnabled ?? true) result.enabled = await sendHs256Lifecycle(siteName, descriptor.key, 'enabled');
      }
      return result;
    },

    async uninstallApp(siteName, appKey, o = {}) {
      const e = entry(siteName);
      const inst = getInstallation(siteName, appKey);
      if ((o.sendDisabled ?? true) && inst.enabled && inst.descriptor.lifecycle?.disabled) await sendHs256Lifecycle(siteName, inst.appKey, 'disabled');
      const payload = lifecyclePayload(e, inst.appKey, 'uninstalled');
      const rel = inst.descriptor.lifecycle?.uninstalled;
      // Jira removes the app and all data it sent whatever the app answers (reference §1.2).
      e.site.installations.delete(inst.appKey);
      e.site.purgeAppData(inst.appKey);
      if (!rel) return { event: 'uninstalled', url: '', ok: true, status: 0, responseBody: '', payload };
      const target = joinUrl(inst.descriptor.baseUrl, rel);
      const token = await installToken(target, inst.descriptor, e.site.clientKey, inst.sharedSecret, e.site.siteAdmin()?.accountId, o.fault);
      const r = await post(target, token, payload);
      return { event: 'uninstalled', url: target, ok: r.status === 200 || r.status === 204, status: r.status, responseBody: r.text, ...(token ? { token } : {}), payload };
    },

    enableApp: (siteName, appKey) => sendHs256Lifecycle(siteName, appKey, 'enabled'),
    disableApp: (siteName, appKey) => sendHs256Lifecycle(siteName, appKey, 'disabled'),
    installation: (siteName, appKey) => {
      const site = entry(siteName).site;
      return appKey ? site.installations.get(appKey) : [...site.installations.values()][0];
    },
    rotateInstallKey: newKey,

    iframeUrl(siteName, user, appPath, o = {}) {
      const e = entry(siteName);
      const inst = getInstallation(siteName, o.appKey);
      const u = resolveUser(e.site, user);
      const target = new URL(joinUrl(inst.descriptor.baseUrl, appPath));
      const moduleKey = o.moduleKey ?? 'page';
      const standard: Record<string, string> = {
        xdm_e: new URL(e.baseUrl).origin,
        xdm_c: `channel-${inst.appKey}__${moduleKey}`,
        cp: e.contextPath,
        xdm_deprecated_addon_key_do_not_use: inst.appKey,
        lic: 'none',
        cv: '1001.0.0-SNAPSHOT',
      };
      for (const [k, v] of Object.entries({ ...standard, ...(o.query ?? {}) })) target.searchParams.set(k, v);
      const qsh = computeQsh('GET', target.toString(), contextPathOf(inst.descriptor.baseUrl));
      const token = hs256JiraToken(inst, e.site.clientKey, 'GET', target.toString(), { ...o, ...(u ? { sub: u.accountId } : {}), qsh });
      target.searchParams.set('jwt', token);
      return target.toString();
    },

    contextToken(siteName, user, o = {}) {
      const e = entry(siteName);
      const inst = getInstallation(siteName, o.appKey);
      const u = resolveUser(e.site, user);
      return hs256JiraToken(inst, e.site.clientKey, 'GET', '/', { expiresIn: 900, ...o, ...(u ? { sub: u.accountId } : {}), qsh: 'context-qsh' });
    },

    jiraToken(siteName, method, appUrl, o = {}) {
      const e = entry(siteName);
      const inst = getInstallation(siteName, o.appKey);
      const u = resolveUser(e.site, o.user);
      return hs256JiraToken(inst, e.site.clientKey, method, appUrl, { ...o, ...(u ? { sub: u.accountId } : {}) });
    },

    requests(filter = {}) {
      return records.filter((r) => Object.entries(filter).every(([k, v]) => r[k as keyof RecordedRequest] === v));
    },
    unexpectedCalls: () => records.filter((r) => r.unexpected !== undefined),
    clearRequests() {
      records.length = 0;
    },

    faults: {
      failNext(spec) {
        failSpecs.push({ ...spec, remaining: spec.count ?? 1 });
      },
      setLatency(ms, siteName) {
        if (siteName) entry(siteName).latencyMs = ms;
        else globalLatency = ms;
      },
      setRateLimit(siteName, limit) {
        const e = entry(siteName);
        if (limit) e.bucket = { limit, tokens: limit.capacity, last: now() };
        else delete e.bucket;
      },
      clear() {
        failSpecs = [];
        globalLatency = 0;
        for (const e of entries.values()) {
          delete e.bucket;
          delete e.latencyMs;
        }
      },
    },

    async close() {
      const servers = [mainServer, ...[...entries.values()].flatMap((e) => (e.server ? [e.server] : []))];
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
  return sim;
}
