// The pages Jira shows in iframes (design.md §4): GET /pages/admin, /pages/project, /pages/issue,
// each authenticated with the HS256 page JWT in `?jwt=` (real qsh, never a context token), plus the
// browser module and stylesheet they load (src/web/static, plain ES2022 + JSDoc checked by tsc with
// src/web/static/tsconfig.json; served as-is with a content hash in the URL).
//
// A page response is a shell without tenant data. The browser module asks Atlassian's all.js for a
// context token (AP.context.getToken) and calls /api/v1/… with `Authorization: JWT <token>`; the
// admin API checks Jira permissions for every call (site admin / project admin / browse).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PAGE_ROUTES } from '../../jira/descriptor.ts';
import { jiraAuthHooks } from '../../jira/request-auth.ts';
import type { TenantRepository } from '../../tenants/repository.ts';
import { newNonce, setPageHeaders, siteOrigin } from './headers.ts';
import { renderShell, type PageKind } from './templates.ts';

export const DEFAULT_ALL_JS_URL = 'https://connect-cdn.atl-paas.net/all.js';

export interface PagesDeps {
  tenants: TenantRepository;
  /** The app's BASE_URL (qsh is computed relative to its path). */
  baseUrl: string;
  /** Atlassian's all.js; tests and offline demos point this elsewhere. Default: Atlassian's CDN. */
  allJsUrl?: string;
  /** Where pages.js / pages.css live; default: src/web/static next to this module (or dist's copy). */
  staticDir?: string;
}

interface Asset {
  body: Buffer;
  type: string;
  path: string;
}

const STATIC_FILES = [
  { file: 'pages.js', type: 'text/javascript; charset=utf-8' },
  { file: 'pages.css', type: 'text/css; charset=utf-8' },
] as const;

/** src/web/static when running from source; dist/web/static if the build copied it; else the source tree next to dist. */
function findStaticDir(): string {
  const candidates = [new URL('../static/', import.meta.url), new URL('../../../src/web/static/', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((dir) => STATIC_FILES.every((f) => existsSync(`${dir}/${f.file}`)));
  if (!found) throw new Error(`page assets (${STATIC_FILES.map((f) => f.file).join(', ')}) not found in ${candidates.join(' or ')}`);
  return found;
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const { file, type } of STATIC_FILES) {
    const body = readFileSync(`${dir.replace(/\/+$/, '')}/${file}`);
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
    const [base, ext] = file.split('.') as [string, string];
    assets.set(file, { body, type, path: `/static/tcj-${base}.${hash}.${ext}` });
  }
  return assets;
}

function stringParam(query: unknown, name: string, pattern: RegExp): string | undefined {
  const v = (query as Record<string, unknown> | undefined)?.[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > 255) return undefined;
  return pattern.test(v) ? v : undefined;
}

export function registerPages(app: FastifyInstance, deps: PagesDeps): void {
  const assets = loadAssets(deps.staticDir ?? findStaticDir());
  const allJsUrl = deps.allJsUrl ?? DEFAULT_ALL_JS_URL;
  const allJsOrigin = new URL(allJsUrl).origin;
  const auth = jiraAuthHooks({ tenants: deps.tenants, baseUrl: deps.baseUrl });

  for (const asset of assets.values()) {
    // Content-addressed, so cacheable for good; no tenant data in them.
    app.get(asset.path, async (_req, reply) => reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body));
  }
  // Pages live at <base>/pages/x, so assets are referenced relative to the page (works under a context path).
  const scriptUrl = `..${assets.get('pages.js')!.path}`;
  const styleUrl = `..${assets.get('pages.css')!.path}`;

  const page = (kind: PageKind) => async (req: FastifyRequest, reply: FastifyReply) => {
    const jira = req.jira;
    if (!jira) return reply.status(401).send({ error: { code: 'unauthorized', message: 'no Jira context' } });
    const nonce = newNonce();
    setPageHeaders(reply, { nonce, frameAncestor: siteOrigin(jira.baseUrl), scriptOrigins: [allJsOrigin] });
    const q = req.query;
    const params = {
      projectId: kind === 'project' ? stringParam(q, 'projectId', /^\d+$/) : undefined,
      // Keys and ids are shown escaped whatever they contain; the API validates them again.
      projectKey: kind === 'project' ? stringParam(q, 'projectKey', /^[^\s]+$/) : undefined,
      issueKey: kind === 'issue' ? stringParam(q, 'issueKey', /^[^\s]+$/) : undefined,
    };
    return reply.type('text/html; charset=utf-8').send(renderShell({ page: kind, nonce, allJsUrl, scriptUrl, styleUrl, params }));
  };

  app.get(PAGE_ROUTES.admin, { preHandler: auth.page }, page('admin'));
  app.get(PAGE_ROUTES.project, { preHandler: auth.page }, page('project'));
  app.get(PAGE_ROUTES.issue, { preHandler: auth.page }, page('issue'));
}
