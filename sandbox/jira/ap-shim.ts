// Offline stand-in for Atlassian's iframe bridge, for the demo (and anyone running the app without
// internet): the app's pages load `all.js` (config ATLASSIAN_ALL_JS_URL) and call
// `AP.context.getToken()` and `AP.resize()`. Routes, registered by server.ts:
//
// - `GET /all.js`: a tiny script defining `window.AP`. `AP.context.getToken(cb)` asks the simulator for
//   a context token by JSONP (a <script> from the all.js origin: the pages' CSP allows that origin in
//   script-src, while connect-src is 'self' only, so a fetch() would be blocked). `AP.resize()` posts
//   the page height to the parent frame, which the host page below uses to size the iframe.
// - `GET /_sim/context-token?jwt=<page jwt>[&callback=<name>]`: verifies the page token Jira put in the
//   iframe URL (HS256 with the shared secret of an installation on the site whose clientKey is `iss`)
//   and answers a context token (`qsh: "context-qsh"`) for the same site, app and user (`sub`).
//   The page token's `exp` is not enforced (in Jira the user's session, not that token, authorises
//   getToken); tokens issued more than 12 hours ago are refused.
// - `GET <site>/_sim/open?user=<name|accountId>&path=/pages/admin[&k=v…]`: a Jira-like host page that
//   frames the app page with a freshly signed iframe URL (extra query parameters are passed to the
//   app page, e.g. `issueKey`, `projectId`), so a printed link never expires. `&redirect=1` redirects
//   to the iframe URL instead.
import { decodeJwt, hs256SignatureValid } from './jwt.ts';
import type { Installation, Site } from './site.ts';

export interface ShimHost {
  /** Name of the site whose clientKey is `clientKey`. */
  siteByClientKey(clientKey: string): string | undefined;
  site(name: string): Site;
  siteUrl(name: string): string;
  contextToken(site: string, user: string, options: { appKey: string }): string;
  iframeUrl(site: string, user: string, appPath: string, options: { appKey?: string; query?: Record<string, string> }): string;
  now(): number;
}

export interface ShimResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const MAX_PAGE_TOKEN_AGE_S = 12 * 3600;
const CALLBACK = /^[A-Za-z_$][\w$]{0,63}$/;

export const AP_SHIM_JS = `/* Jira Cloud simulator: offline stand-in for Atlassian's all.js (AP.context.getToken, AP.resize). */
(function () {
  'use strict';
  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src).origin : '';
  var pageJwt = new URLSearchParams(window.location.search).get('jwt') || '';
  var seq = 0;
  function fetchToken() {
    return new Promise(function (resolve, reject) {
      var name = '__apSimToken' + (++seq);
      var el = document.createElement('script');
      var timer = setTimeout(function () { done(); reject(new Error('context token: no answer from the Jira simulator')); }, 10000);
      function done() { clearTimeout(timer); try { delete window[name]; } catch (e) { window[name] = undefined; } el.remove(); }
      window[name] = function (token, error) { done(); if (token) resolve(token); else reject(new Error(error || 'no context token')); };
      el.onerror = function () { done(); reject(new Error('context token: the Jira simulator is unreachable')); };
      el.src = origin + '/_sim/context-token?callback=' + name + '&jwt=' + encodeURIComponent(pageJwt);
      document.head.appendChild(el);
    });
  }
  function height() {
    var d = document.documentElement, b = document.body;
    return Math.max(d.scrollHeight, d.offsetHeight, b ? b.scrollHeight : 0);
  }
  window.AP = {
    context: {
      getToken: function (cb) {
        var p = fetchToken();
        if (typeof cb === 'function') { p.then(cb, function () {}); }
        return p;
      }
    },
    resize: function () {
      if (window.parent !== window) window.parent.postMessage({ type: 'ap-sim-resize', height: height() }, '*');
    },
    sizeToParent: function () {}
  };
  window.addEventListener('load', function () { window.AP.resize(); });
})();
`;

function text(status: number, body: string, type: string, extra: Record<string, string> = {}): ShimResponse {
  return { status, headers: { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra }, body };
}

export function serveAllJs(): ShimResponse {
  return text(200, AP_SHIM_JS, 'text/javascript; charset=utf-8', { 'cross-origin-resource-policy': 'cross-origin' });
}

/** Verifies a page (iframe) token and mints the context token `AP.context.getToken()` would return. */
export function mintContextToken(host: ShimHost, pageJwt: string): { token: string } | { status: number; error: string } {
  const decoded = decodeJwt(pageJwt);
  if (!decoded) return { status: 400, error: 'jwt missing or malformed (open the page through Jira)' };
  if (decoded.header.alg !== 'HS256') return { status: 401, error: 'page token is not HS256' };
  const { claims } = decoded;
  const iss = claims['iss'];
  const siteName = typeof iss === 'string' ? host.siteByClientKey(iss) : undefined;
  if (!siteName) return { status: 401, error: 'page token iss is not the clientKey of a simulated site' };
  const site = host.site(siteName);
  const inst: Installation | undefined = [...site.installations.values()].find((i) => hs256SignatureValid(decoded, i.sharedSecret));
  if (!inst) return { status: 401, error: 'page token does not verify with the shared secret of any app on the site (reinstalled since?)' };
  const iat = claims['iat'];
  if (typeof iat !== 'number' || host.now() / 1000 - iat > MAX_PAGE_TOKEN_AGE_S) return { status: 401, error: 'page token too old: reload the page from Jira' };
  const sub = claims['sub'];
  if (typeof sub !== 'string' || !site.user(sub)) return { status: 401, error: 'page token has no known user (sub)' };
  return { token: host.contextToken(siteName, sub, { appKey: inst.appKey }) };
}

export function contextTokenResponse(host: ShimHost, query: Map<string, string[]>): ShimResponse {
  const result = mintContextToken(host, query.get('jwt')?.[0] ?? '');
  const callback = query.get('callback')?.[0];
  if (callback !== undefined) {
    if (!CALLBACK.test(callback)) return text(400, '/* invalid callback name */', 'text/javascript; charset=utf-8');
    const args = 'token' in result ? JSON.stringify(result.token) : `null, ${JSON.stringify(result.error)}`;
    // Always 200: a script that failed to load gives the page no reason; the callback does.
    return text(200, `${callback}(${args});`, 'text/javascript; charset=utf-8', { 'cross-origin-resource-policy': 'cross-origin' });
  }
  return 'token' in result ? text(200, JSON.stringify(result), 'application/json') : text(result.status, JSON.stringify({ error: result.error }), 'application/json');
}

function esc(v: string): string {
  return v.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** The Jira-like host page that frames an app page for a user (a fresh iframe URL on every load). */
export function openPage(host: ShimHost, siteName: string, query: Map<string, string[]>): ShimResponse {
  const site = host.site(siteName);
  const first = (k: string): string | undefined => query.get(k)?.[0];
  const userName = first('user') ?? site.siteAdmin()?.displayName ?? '';
  const user = site.user(userName);
  if (!user) return text(404, `<!doctype html><p>No user ${esc(userName)} on site ${esc(siteName)}.</p>`, 'text/html; charset=utf-8');
  const appKey = first('appKey');
  if (site.installations.size === 0 || (appKey && !site.installations.has(appKey))) {
    return text(409, `<!doctype html><p>The app is not installed on site ${esc(siteName)}.</p>`, 'text/html; charset=utf-8');
  }
  const path = first('path') ?? '/pages/admin';
  if (!/^\/[\w\-./]*$/.test(path)) return text(400, '<!doctype html><p>path must be an app path such as /pages/admin</p>', 'text/html; charset=utf-8');
  const reserved = new Set(['user', 'path', 'appKey', 'redirect']);
  const extra = Object.fromEntries([...query.entries()].filter(([k]) => !reserved.has(k)).map(([k, v]) => [k, v[0] ?? '']));
  const src = host.iframeUrl(siteName, user.accountId, path, { ...(appKey ? { appKey } : {}), query: extra });
  if (first('redirect') === '1') return { status: 302, headers: { location: src, 'cache-control': 'no-store' }, body: '' };
  const base = host.siteUrl(siteName);
  const issueKey = extra['issueKey'];
  const crumbs = issueKey ? ` · <a href="${esc(base)}/browse/${esc(issueKey)}">${esc(issueKey)}</a>` : '';
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Jira (simulator) — ${esc(siteName)}</title>
<style>body{margin:0;font-family:system-ui,sans-serif;color:#172b4d;background:#f7f8f9}header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#0c66e4;color:#fff}
header a{color:#fff}header .who{margin-left:auto;opacity:.9}main{padding:1em 1.2em}iframe{border:0;width:100%;min-height:600px;background:#fff;border-radius:4px;box-shadow:0 1px 2px #091e4240}</style></head>
<body><header><strong>Jira</strong><span>simulated site “${esc(siteName)}”</span><a href="${esc(base)}/browse">Issues</a>${crumbs}<span class="who">signed in as ${esc(user.displayName)}${user.siteAdmin ? ' (site admin)' : ''}</span></header>
<main><iframe id="app-frame" title="app page" src="${esc(src)}"></iframe></main>
<script>
var frame = document.getElementById('app-frame');
window.addEventListener('message', function (e) {
  if (e.source !== frame.contentWindow || !e.data || e.data.type !== 'ap-sim-resize') return;
  var h = Number(e.data.height);
  if (h > 0 && h < 100000) frame.style.height = (h + 8) + 'px';
});
</script></body></html>`;
  return text(200, html, 'text/html; charset=utf-8');
}
