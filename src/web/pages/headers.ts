// Security headers for the pages Jira shows in iframes. The global headers (web/server.ts) still
// apply; these add a strict CSP per response:
// - scripts only with this response's nonce (all.js and our module), never inline handlers or eval;
// - styles, images, fetches only from our own origin;
// - frame-ancestors = the tenant's own Jira origin (never a wildcard over every Atlassian site), so
//   another site cannot frame a page signed for this tenant; no X-Frame-Options, which cannot express
//   "this one origin" and would break embedding.
// cross-origin-opener-policy (global) only governs top-level windows and does not affect iframes.
import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';

export function newNonce(): string {
  return randomBytes(18).toString('base64');
}

/** The origin of a Jira site base URL (`https://acme.atlassian.net/…` → `https://acme.atlassian.net`); throws if not http(s). */
export function siteOrigin(baseUrl: string): string {
  const u = new URL(baseUrl);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`not a web origin: ${u.protocol}`);
  return u.origin;
}

export function pageCsp(opts: { nonce: string; frameAncestor: string; scriptOrigins: string[] }): string {
  const scripts = [`'nonce-${opts.nonce}'`, "'self'", ...new Set(opts.scriptOrigins)];
  return [
    "default-src 'none'",
    `script-src ${scripts.join(' ')}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    `frame-ancestors ${opts.frameAncestor}`,
  ].join('; ');
}

export function setPageHeaders(reply: FastifyReply, opts: { nonce: string; frameAncestor: string; scriptOrigins: string[] }): void {
  reply
    .header('content-security-policy', pageCsp(opts))
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .removeHeader('x-frame-options');
}
