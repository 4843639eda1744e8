// Atlassian Connect query string hash (reference/jira-cloud.md §2.4):
//   canonical = UPPER(method) & canonicalUri & canonicalQuery ;  qsh = hex(sha256(canonical))
// Proven against Atlassian's 78 official vectors (qsh.test.ts).
import { createHash } from 'node:crypto';

/** RFC 3986 percent-encoding: only A-Z a-z 0-9 - . _ ~ stay as they are. */
function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decodeComponent(value: string): string {
  const spaced = value.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** Code-point order, as the official vectors require ("A" < "B" < "a" < "b"). */
const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Canonical query from a raw query string (without `?`): `jwt` dropped, keys and values sorted. */
export function canonicalQuery(rawQuery: string): string {
  const params = new Map<string, string[]>();
  for (const part of rawQuery.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    if (key === 'jwt') continue;
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1));
    params.set(key, [...(params.get(key) ?? []), value]);
  }
  return [...params.keys()]
    .sort(byCodePoint)
    .map((k) => `${encodeRfc3986(k)}=${params.get(k)!.sort(byCodePoint).map(encodeRfc3986).join(',')}`)
    .join('&');
}

/** Canonical URI: the raw path minus the context path, leading `/`, no trailing `/`, `&` → `%26`. */
export function canonicalUri(rawPath: string, contextPath = ''): string {
  let path = rawPath || '/';
  const ctx = contextPath.replace(/\/+$/, '');
  if (ctx && (path === ctx || path.startsWith(`${ctx}/`))) path = path.slice(ctx.length);
  if (!path.startsWith('/')) path = `/${path}`;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path.replace(/&/g, '%26');
}

/**
 * The canonical request for `method` and a URL or path-with-query (e.g. `req.url`). `contextPath`
 * is the path part of the base URL the request is relative to (our BASE_URL for incoming requests,
 * the site's baseUrl for calls to Jira).
 */
export function canonicalRequest(method: string, url: string, contextPath = ''): string {
  let rest = url.replace(/#.*$/, '').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?]*/i, '');
  const q = rest.indexOf('?');
  const query = q === -1 ? '' : rest.slice(q + 1);
  if (q !== -1) rest = rest.slice(0, q);
  return `${method.toUpperCase()}&${canonicalUri(rest, contextPath)}&${canonicalQuery(query)}`;
}

export function qsh(method: string, url: string, contextPath = ''): string {
  return createHash('sha256').update(canonicalRequest(method, url, contextPath), 'utf8').digest('hex');
}

/** The fixed qsh of context tokens (apiMigrations.context-qsh). */
export const CONTEXT_QSH = 'context-qsh';
