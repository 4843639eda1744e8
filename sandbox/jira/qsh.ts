// Atlassian Connect query-string hash (QSH), implemented independently of the app (reference §2.4).
//
//   canonical = UPPER(method) + "&" + canonicalUri + "&" + canonicalQuery
//   qsh       = lowercase hex SHA-256 of UTF-8(canonical)
//
// Proven against the 78 official Atlassian vectors in qsh.test.ts.
import { createHash } from 'node:crypto';

/** RFC 3986 percent-encoding: only A-Za-z0-9 - . _ ~ are left as they are. */
export function rfc3986Encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Decodes one query component as received in a URL: `+` is a space, then percent-decoding. */
export function decodeQueryComponent(value: string): string {
  const spaced = value.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // Malformed escapes are kept literally (Jira would not match such a request anyway).
    return spaced;
  }
}

/** Parses a raw query string (without `?`) into key → decoded values, in order of appearance. */
export function parseRawQuery(rawQuery: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  if (rawQuery === '') return params;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decodeQueryComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decodeQueryComponent(part.slice(eq + 1));
    const list = params.get(key);
    if (list) list.push(value);
    else params.set(key, [value]);
  }
  return params;
}

function compareCodePoints(a: string, b: string): number {
  // Sort by code point (Java's String.compareTo on UTF-16 units gives the same order for the BMP).
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Canonical query: `jwt` dropped, keys sorted, values of a key sorted by decoded value, RFC 3986 encoded. */
export function canonicalQuery(params: Map<string, string[]>): string {
  const keys = [...params.keys()].filter((k) => k !== 'jwt').sort(compareCodePoints);
  return keys
    .map((key) => {
      const values = [...(params.get(key) ?? [])].sort(compareCodePoints);
      return `${rfc3986Encode(key)}=${values.map(rfc3986Encode).join(',')}`;
    })
    .join('&');
}

/**
 * Canonical URI: the raw (not re-encoded) path with the context path (path part of the relevant
 * baseUrl) stripped, a leading `/` ensured, one trailing `/` removed, and `&` replaced by `%26`.
 */
export function canonicalUri(rawPath: string, contextPath = ''): string {
  let path = rawPath === '' ? '/' : rawPath;
  const ctx = contextPath.replace(/\/+$/, '');
  if (ctx !== '' && (path === ctx || path.startsWith(ctx + '/'))) path = path.slice(ctx.length);
  if (!path.startsWith('/')) path = '/' + path;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path.replace(/&/g, '%26');
}

/** Splits a URL or a path-with-query into the raw path and raw query, without any normalisation. */
export function splitRawUrl(url: string): { path: string; query: string } {
  let rest = url;
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const schemeMatch = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?]*/.exec(rest);
  if (schemeMatch) rest = rest.slice(schemeMatch[0].length);
  const q = rest.indexOf('?');
  return q === -1 ? { path: rest, query: '' } : { path: rest.slice(0, q), query: rest.slice(q + 1) };
}

/** The canonical request string for a method and a URL (absolute, or a path with query). */
export function canonicalRequest(method: string, url: string, contextPath = ''): string {
  const { path, query } = splitRawUrl(url);
  return `${method.toUpperCase()}&${canonicalUri(path, contextPath)}&${canonicalQuery(parseRawQuery(query))}`;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The QSH of a request. `contextPath` is the path part of the receiver's baseUrl (stripped). */
export function computeQsh(method: string, url: string, contextPath = ''): string {
  return sha256Hex(canonicalRequest(method, url, contextPath));
}

/** The path part of a base URL, without a trailing slash (`https://h/x/` → `/x`, `https://h` → ``). */
export function contextPathOf(baseUrl: string): string {
  return new URL(baseUrl).pathname.replace(/\/+$/, '');
}
