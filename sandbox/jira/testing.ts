// Test support for the Jira simulator: a tiny, strict Connect "app" (verifies the RS256 install JWT with
// jose, using the key fetched from the simulator's key server) and an HS256 token minter for app → Jira
// calls. Used by the simulator's own tests; also handy for the app's tests as a reference client.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { canonicalRequest } from './qsh.ts';
import { startJiraSimulator, type InstallResult, type JiraSimulator, type JiraSimulatorOptions } from './server.ts';

export interface TestAppOptions {
  keysUrl: string;
  appKey?: string;
  /** Path prefix of the app's baseUrl (context path), e.g. `/app`. */
  contextPath?: string;
  modules?: Record<string, unknown>;
  scopes?: string[];
}

export interface LifecycleEvent {
  event: string;
  accepted: boolean;
  reason?: string;
  payload: Record<string, unknown>;
  claims?: Record<string, unknown>;
}

export interface TestApp {
  baseUrl: string;
  descriptorUrl: string;
  appKey: string;
  events: LifecycleEvent[];
  /** Latest verified installation per clientKey. */
  tenants: Map<string, { sharedSecret: string; baseUrl: string }>;
  keyFetches: string[];
  close(): Promise<void>;
}

export const DEFAULT_MODULES = {
  jiraBuildInfoProvider: { key: 'teamcity-builds', name: { value: 'TeamCity' }, homeUrl: 'https://www.jetbrains.com/teamcity/' },
  jiraDeploymentInfoProvider: { key: 'teamcity-deployments', name: { value: 'TeamCity' }, homeUrl: 'https://www.jetbrains.com/teamcity/' },
};

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

export async function startTestApp(o: TestAppOptions): Promise<TestApp> {
  const appKey = o.appKey ?? 'teamcity-integration-for-jira';
  const ctx = o.contextPath ?? '';
  const events: LifecycleEvent[] = [];
  const tenants = new Map<string, { sharedSecret: string; baseUrl: string }>();
  const keyFetches: string[] = [];
  let baseUrl = '';

  async function verifyInstall(event: string, auth: string | undefined, payload: Record<string, unknown>): Promise<Record<string, unknown>> {
    const token = /^JWT (\S+)$/.exec(auth ?? '')?.[1];
    if (!token) throw new Error('no JWT');
    const header = decodeProtectedHeader(token);
    if (header.alg !== 'RS256' || typeof header.kid !== 'string' || header.kid === '') throw new Error('not RS256 with kid');
    keyFetches.push(header.kid);
    const r = await fetch(`${o.keysUrl}/${encodeURIComponent(header.kid)}`);
    if (!r.ok) throw new Error(`key fetch ${r.status}`);
    const key = await importSPKI(await r.text(), 'RS256');
    const { payload: claims } = await jwtVerify(token, key, { algorithms: ['RS256'], audience: baseUrl });
    if (claims.iss !== payload['clientKey']) throw new Error('iss != clientKey');
    // Canonical request computed here by hand, independent of the simulator's qsh module.
    if (claims['qsh'] !== sha256(`POST&/lifecycle/${event}&`)) throw new Error('qsh mismatch');
    return claims;
  }

  async function verifyHs256(auth: string | undefined, payload: Record<string, unknown>, event: string): Promise<Record<string, unknown>> {
    const token = /^JWT (\S+)$/.exec(auth ?? '')?.[1];
    if (!token) throw new Error('no JWT');
    const tenant = tenants.get(String(payload['clientKey']));
    if (!tenant) throw new Error('unknown tenant');
    const { payload: claims } = await jwtVerify(token, new TextEncoder().encode(tenant.sharedSecret), { algorithms: ['HS256'], issuer: String(payload['clientKey']) });
    if (claims['qsh'] !== sha256(`POST&/lifecycle/${event}&`)) throw new Error('qsh mismatch');
    return claims;
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (req.method === 'GET' && path === `${ctx}/atlassian-connect.json`) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          key: appKey, name: 'TeamCity Integration (test)', baseUrl, authentication: { type: 'jwt' },
          apiMigrations: { 'signed-install': true, 'context-qsh': true, gdpr: true },
          lifecycle: { installed: '/lifecycle/installed', uninstalled: '/lifecycle/uninstalled', enabled: '/lifecycle/enabled', disabled: '/lifecycle/disabled' },
          scopes: o.scopes ?? ['READ', 'WRITE', 'DELETE'],
          modules: o.modules ?? DEFAULT_MODULES,
        }));
        return;
      }
      const m = new RegExp(`^${ctx}/lifecycle/(installed|uninstalled|enabled|disabled)$`).exec(path);
      if (req.method === 'POST' && m) {
        const event = m[1]!;
        let text = '';
        for await (const c of req) text += (c as Buffer).toString('utf8');
        const payload = JSON.parse(text) as Record<string, unknown>;
        try {
          const claims = event === 'installed' || event === 'uninstalled'
            ? await verifyInstall(event, req.headers.authorization, payload)
            : await verifyHs256(req.headers.authorization, payload, event);
          if (event === 'installed') tenants.set(String(payload['clientKey']), { sharedSecret: String(payload['sharedSecret']), baseUrl: String(payload['baseUrl']) });
          events.push({ event, accepted: true, payload, claims });
          res.writeHead(204);
          res.end();
        } catch (err) {
          events.push({ event, accepted: false, reason: err instanceof Error ? err.message : String(err), payload });
          res.writeHead(401);
          res.end();
        }
        return;
      }
      res.writeHead(404);
      res.end();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}${ctx}`;
  return {
    baseUrl, descriptorUrl: `${baseUrl}/atlassian-connect.json`, appKey, events, tenants, keyFetches,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** HS256 app → Jira token (reference §2.3) signed with jose. */
export async function appToken(o: { appKey: string; sharedSecret: string; qsh: string; expiresIn?: number; iat?: number; aud?: string | string[] }): Promise<string> {
  const iat = o.iat ?? Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ qsh: o.qsh, ...(o.aud ? { aud: o.aud } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(o.appKey)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.expiresIn ?? 180));
  return jwt.sign(new TextEncoder().encode(o.sharedSecret));
}

export interface CallOptions {
  body?: unknown;
  rawBody?: string;
  /** Override the token entirely (`null` = no Authorization header). */
  token?: string | null;
  secret?: string;
  iss?: string;
  qsh?: string;
  expiresIn?: number;
  iat?: number;
  aud?: string | string[];
}

export interface CallResult {
  status: number;
  body: unknown;
  headers: Headers;
}

/** Calls a simulated site as the installed app would: `Authorization: JWT` HS256 with qsh of the call. */
export async function callAsApp(
  siteBaseUrl: string, install: { appKey: string; sharedSecret: string }, method: string, pathAndQuery: string, o: CallOptions = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = o.token !== undefined
    ? o.token
    : await appToken({
      appKey: o.iss ?? install.appKey, sharedSecret: o.secret ?? install.sharedSecret,
      qsh: o.qsh ?? sha256(canonicalRequest(method, pathAndQuery)),
      ...(o.expiresIn !== undefined ? { expiresIn: o.expiresIn } : {}), ...(o.iat !== undefined ? { iat: o.iat } : {}),
      ...(o.aud !== undefined ? { aud: o.aud } : {}),
    });
  if (token !== null) headers['authorization'] = `JWT ${token}`;
  let body: string | undefined;
  if (o.rawBody !== undefined) body = o.rawBody;
  else if (o.body !== undefined) body = JSON.stringify(o.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${siteBaseUrl}${pathAndQuery}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    parsed = text;
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** Starts a simulator and a test app, and installs the app on site `acme`. */
export async function startInstalled(simOptions: JiraSimulatorOptions = {}, appOptions: Partial<TestAppOptions> = {}): Promise<{
  sim: JiraSimulator; app: TestApp; install: InstallResult; call: (method: string, pathAndQuery: string, o?: CallOptions) => Promise<CallResult>; close: () => Promise<void>;
}> {
  const sim = await startJiraSimulator(simOptions);
  const app = await startTestApp({ keysUrl: sim.keysUrl, ...appOptions });
  const install = await sim.installApp('acme', app.descriptorUrl);
  if (!install.ok) throw new Error(`install failed: ${install.status} ${JSON.stringify(app.events)}`);
  return {
    sim, app, install,
    call: (method, pathAndQuery, o) => callAsApp(sim.siteUrl('acme'), install, method, pathAndQuery, o),
    close: async () => {
      await sim.close();
      await app.close();
    },
  };
}

/** Response body types for test assertions (202 bodies of the bulk APIs, Jira error lists). */
export type ErrorMessages = Array<{ message: string }>;
export interface BuildKey { pipelineId: string; buildNumber: number }
export interface DeploymentKey { pipelineId: string; environmentId: string; deploymentSequenceNumber: number }
export interface BuildsResponse {
  acceptedBuilds: BuildKey[];
  rejectedBuilds: Array<{ key: BuildKey; errors: ErrorMessages }>;
  unknownIssueKeys: string[];
}
export interface DeploymentsResponse {
  acceptedDeployments: DeploymentKey[];
  rejectedDeployments: Array<{ key: DeploymentKey; errors: ErrorMessages }>;
  unknownIssueKeys: string[];
  unknownAssociations: Array<{ associationType: string; values: string[] }>;
}
export interface IssueResponse { id: string; key: string; self: string; fields: Record<string, { key?: string } | string> }
export interface ProjectResponse { id: string; key: string; projectTypeKey: string }
export interface PermissionsResponse {
  globalPermissions: string[];
  projectPermissions: Array<{ permission: string; projects: number[]; issues: number[] }>;
}
