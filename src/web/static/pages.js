// @ts-check
// The browser side of the pages Jira shows in iframes (admin, project, issue). Plain ES2022 with
// JSDoc types, type-checked by tsc (src/web/static/tsconfig.json) and served as-is: no bundler.
//
// Rules: every piece of data is put into the DOM with textContent / setAttribute on elements we
// create (never innerHTML), links only for http(s) URLs, and every API call carries a fresh Jira
// context token (AP.context.getToken) as `Authorization: JWT …`. The admin API checks the user's Jira
// permissions on each call, so this code trusts nothing it holds itself.
/* global document, window, location, fetch, setTimeout, clearTimeout, setInterval, clearInterval, URL, URLSearchParams, atob, console */

/** @typedef {Record<string, unknown>} Obj */
/** @typedef {Node | string | number | null | undefined | false} Child */
/**
 * @typedef {object} AtlassianAP
 * @property {{ getToken: (cb?: (token: string) => void) => (Promise<string> | void) }} context
 * @property {() => void} [resize]
 */

const root = /** @type {HTMLElement} */ (document.getElementById('tcj-root'));
const appEl = /** @type {HTMLElement} */ (document.getElementById('tcj-app'));
const API = new URL('../api/v1/', location.href);

// ------------------------------------------------------------------------------------------------
// Small helpers

/**
 * Creates an element. Strings in `children` become text nodes; attributes are set with
 * setAttribute (names are always ours); `on*` functions become listeners.
 * @param {string} tag
 * @param {Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {(Child | Child[])[]} children
 */
function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** @param {HTMLElement} el @param {...(Child | Child[])} children */
function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** @param {unknown} v @returns {Obj} */
const obj = (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? /** @type {Obj} */ (v) : {});
/** @param {unknown} v @returns {unknown[]} */
const arr = (v) => (Array.isArray(v) ? v : []);
/** @param {unknown} v @returns {string} */
const str = (v) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
/** @param {unknown} v @returns {number | undefined} */
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined);

/**
 * The first of several field names that is present (the admin API's names, with tolerated aliases).
 * @param {unknown} o @param {...string} names @returns {unknown}
 */
function pick(o, ...names) {
  const r = obj(o);
  for (const n of names) if (r[n] !== undefined && r[n] !== null) return r[n];
  return undefined;
}

/** A link for http(s) URLs only; anything else is plain text. @param {unknown} url @param {Child} label */
function link(url, label) {
  const u = str(url);
  if (/^https?:\/\//i.test(u)) return h('a', { href: u, target: '_blank', rel: 'noopener noreferrer' }, label);
  return h('span', {}, label);
}

/** @param {unknown} iso */
function when(iso) {
  const s = str(iso);
  if (!s) return h('span', { class: 'tcj-subtle' }, 'never');
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return h('span', {}, s);
  const ago = Math.round((Date.now() - d.getTime()) / 1000);
  const rel = ago < 60 ? 'just now' : ago < 3600 ? `${Math.floor(ago / 60)} min ago` : ago < 86400 ? `${Math.floor(ago / 3600)} h ago` : d.toLocaleDateString();
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, rel);
}

const LOZENGE = /** @type {const} */ ({ success: 'success', current: 'current', removed: 'removed', moved: 'moved', default: 'default' });

/** @param {string} text @param {keyof typeof LOZENGE} kind */
function lozenge(text, kind) {
  return h('span', { class: `tcj-lozenge tcj-lozenge-${LOZENGE[kind]}` }, text);
}

/** @type {Record<string, [string, keyof typeof LOZENGE]>} */
const HEALTH = {
  ok: ['OK', 'success'],
  degraded: ['Degraded', 'moved'],
  failing: ['Failing', 'removed'],
  auth_failed: ['Authentication failed', 'removed'],
  paused: ['Paused', 'default'],
};
/** @param {unknown} state */
const healthLozenge = (state) => {
  const [text, kind] = HEALTH[str(state)] ?? [str(state) || 'Unknown', 'default'];
  return lozenge(text, kind);
};

/** @type {Record<string, keyof typeof LOZENGE>} */
const STATE_KIND = { successful: 'success', failed: 'removed', in_progress: 'current', pending: 'default', cancelled: 'moved', rolled_back: 'moved', unknown: 'default', accepted: 'success', rejected: 'removed', not_sent: 'moved', pending_delivery: 'current' };
/** @param {unknown} state */
const stateLozenge = (state) => lozenge(str(state).replace(/_/g, ' ') || 'unknown', STATE_KIND[str(state)] ?? 'default');

/** @type {Record<string, keyof typeof LOZENGE>} */
const ENV_KIND = { production: 'success', staging: 'moved', testing: 'current', development: 'default', unmapped: 'default' };
/** @param {unknown} type */
const envLozenge = (type) => lozenge(str(type) || 'unmapped', ENV_KIND[str(type)] ?? 'default');

/** @param {string} text @param {'error' | 'warning' | 'success' | 'info'} kind */
function message(text, kind = 'info') {
  return h('div', { class: `tcj-message tcj-message-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/**
 * @param {string[]} headers
 * @param {Child[][]} rows
 * @param {string} [empty]
 * @param {Record<string, string>} [attrs]
 */
function table(headers, rows, empty = 'Nothing yet.', attrs = {}) {
  if (rows.length === 0) return h('p', { class: 'tcj-empty' }, empty);
  return h(
    'table',
    { class: 'tcj-table', ...attrs },
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))),
  );
}

let resizeTimer = 0;
function resize() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    try {
      ap()?.resize?.();
    } catch {
      /* not inside Jira */
    }
  }, 50);
}

// ------------------------------------------------------------------------------------------------
// Jira context token and the admin API

/** @returns {AtlassianAP | undefined} */
function ap() {
  return /** @type {{ AP?: AtlassianAP }} */ (/** @type {unknown} */ (window)).AP;
}

/** @type {{ token: string, exp: number } | undefined} */
let cachedToken;

/** @returns {Promise<string>} */
async function contextToken() {
  const now = Date.now() / 1000;
  if (cachedToken && cachedToken.exp - 60 > now) return cachedToken.token;
  const AP = ap();
  if (!AP?.context?.getToken) throw new ApiError('This page must be opened inside Jira (Atlassian all.js is not available).', 0, 'no_jira');
  const token = await /** @type {Promise<string>} */ (
    new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ApiError('Jira did not provide a context token.', 0, 'no_token')), 10000);
    const done = /** @param {string} t */ (t) => {
      clearTimeout(timer);
      resolve(t);
    };
    const r = AP.context.getToken(done);
    if (r && typeof r.then === 'function') r.then(done, reject);
    })
  );
  let exp = now + 60;
  try {
    const payload = obj(/** @type {unknown} */ (JSON.parse(atob(token.split('.')[1]?.replace(/-/g, '+').replace(/_/g, '/') ?? ''))));
    exp = num(payload.exp) ?? exp;
  } catch {
    /* opaque token: refresh in a minute */
  }
  cachedToken = { token, exp };
  return cachedToken.token;
}

class ApiError extends Error {
  /** @param {string} msg @param {number} status @param {string} code */
  constructor(msg, status, code) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {string} method
 * @param {string} path relative to /api/v1/
 * @param {unknown} [body]
 * @returns {Promise<Obj>}
 */
async function api(method, path, body) {
  const token = await contextToken();
  /** @type {Record<string, string>} */
  const headers = { authorization: `JWT ${token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  /** @type {Response} */
  let res;
  try {
    res = await fetch(new URL(path.replace(/^\//, ''), API), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiError('The app could not be reached. Check your connection and try again.', 0, 'network');
  }
  const text = await res.text();
  /** @type {unknown} */
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = {};
  }
  if (!res.ok) {
    const err = obj(obj(data).error);
    const fallback = res.status === 401 ? 'Your Jira session has expired: reload the page.' : res.status === 403 ? 'You do not have permission to do this in Jira.' : `Request failed (HTTP ${res.status}).`;
    throw new ApiError(str(err.message) || fallback, res.status, str(err.code) || String(res.status));
  }
  return obj(data);
}

/** @param {unknown} err */
const errorText = (err) => (err instanceof Error ? err.message : String(err));

const enc = encodeURIComponent;

// ------------------------------------------------------------------------------------------------
// Admin page

/**
 * @typedef {object} AdminState
 * @property {Obj[]} servers
 * @property {Map<string, Obj>} status
 * @property {string | null} confirmRemove
 * @property {string | null} tableError
 */

/** @type {AdminState} */
const admin = { servers: [], status: new Map(), confirmRemove: null, tableError: null };

function adminPage() {
  const banner = h('div', { id: 'tcj-banner' });
  const notice = h('div', { id: 'tcj-notice' });
  const serversBody = h('div', { id: 'tcj-servers' });
  const formSlot = h('div', { id: 'tcj-server-form' });
  const detail = h('div', { id: 'tcj-detail' });
  const activity = h('section', { id: 'tcj-activity', class: 'tcj-section' });

  replace(
    appEl,
    banner,
    notice,
    h(
      'section',
      { class: 'tcj-section' },
      h('div', { class: 'tcj-section-head' }, h('h2', {}, 'Servers'), h('button', { type: 'button', class: 'tcj-button tcj-button-primary', id: 'tcj-add-server', onclick: () => openServerForm(formSlot, null, refresh) }, 'Add server')),
      formSlot,
      serversBody,
    ),
    detail,
    activity,
  );

  /** @param {string} text @param {'error' | 'success' | 'info'} kind */
  const notify = (text, kind) => {
    replace(notice, message(text, kind));
    resize();
  };

  const renderServers = () => {
    const failing = admin.servers.filter((s) => ['failing', 'auth_failed'].includes(str(admin.status.get(str(s.id))?.state ?? s.state)));
    replace(
      banner,
      failing.length
        ? h(
            'div',
            { class: 'tcj-banner', role: 'alert' },
            h('strong', {}, failing.length === 1 ? 'A TeamCity server needs attention. ' : `${failing.length} TeamCity servers need attention. `),
            failing.map((s) => {
              const st = admin.status.get(str(s.id));
              const state = str(st?.state ?? s.state);
              const err = str(pick(st, 'lastError') ?? pick(s, 'lastError'));
              return h('span', { class: 'tcj-banner-item' }, `${str(s.name)}: ${state === 'auth_failed' ? 'authentication failed — update its credentials' : 'failing'}${err ? ` (${err})` : ''}. `);
            }),
          )
        : null,
    );
    const rows = admin.servers.map((s) => {
      const id = str(s.id);
      const st = admin.status.get(id) ?? {};
      const counts = obj(pick(st, 'counts') ?? pick(s, 'counts'));
      const bf = obj(pick(st, 'backfill'));
      const running = backfillRunning(bf);
      const actions =
        admin.confirmRemove === id
          ? h(
              'div',
              { class: 'tcj-confirm' },
              h('span', {}, `Remove ${str(s.name)} and delete its builds and deployments from Jira?`),
              h('button', { type: 'button', class: 'tcj-button tcj-button-danger', 'data-action': 'confirm-remove', onclick: () => void removeServer(id) }, 'Remove'),
              h('button', { type: 'button', class: 'tcj-button tcj-button-subtle', onclick: () => ((admin.confirmRemove = null), renderServers()) }, 'Cancel'),
            )
          : h(
              'div',
              { class: 'tcj-actions' },
              h('button', { type: 'button', class: 'tcj-button', 'data-action': 'edit', onclick: () => openServerForm(formSlot, s, refresh) }, 'Edit'),
              h('button', { type: 'button', class: 'tcj-button', 'data-action': 'sync', onclick: () => void syncNow(id) }, 'Sync now'),
              h('button', { type: 'button', class: 'tcj-button', 'data-action': 'pause', onclick: () => void setPaused(id, str(pick(st, 'state') ?? s.state) !== 'paused') }, str(pick(st, 'state') ?? s.state) === 'paused' ? 'Resume' : 'Pause'),
              h('button', { type: 'button', class: 'tcj-button', 'data-action': 'backfill', onclick: () => openBackfill(detail, s) }, 'Backfill'),
              h('button', { type: 'button', class: 'tcj-button', 'data-action': 'rules', onclick: () => void openRules(detail, s) }, 'Rules'),
              h('button', { type: 'button', class: 'tcj-button tcj-button-subtle', 'data-action': 'remove', onclick: () => ((admin.confirmRemove = id), renderServers()) }, 'Remove'),
            );
      const lastError = str(pick(st, 'lastError'));
      const deleting = pick(st, 'deletion') ?? pick(s, 'deletion');
      return [
        h('div', {}, h('strong', { class: 'tcj-server-name' }, str(s.name)), h('div', { class: 'tcj-subtle' }, link(s.url, str(s.url)))),
        h('div', {}, deleting ? lozenge('Removing', 'moved') : healthLozenge(pick(st, 'state') ?? s.state), lastError ? h('div', { class: 'tcj-error-text' }, lastError) : null, running ? h('div', { class: 'tcj-subtle' }, `Backfill ${backfillPercent(bf) ?? 0}%`) : null),
        when(pick(st, 'lastSuccessAt', 'lastSuccessfulPollAt', 'lastSuccessfulPoll', 'lastSuccessfulSync') ?? pick(s, 'lastSuccessAt')),
        sentCell(counts),
        str(pick(counts, 'rejected24h', 'rejections24h') ?? '–'),
        actions,
      ];
    });
    replace(
      serversBody,
      admin.tableError ? message(admin.tableError, 'error') : null,
      table(['Server', 'Health', 'Last successful sync', 'Sent to Jira (24 h)', 'Rejected (24 h)', ''], rows, 'No TeamCity servers yet. Add one to start sending builds and deployments to Jira.', { id: 'tcj-servers-table' }),
    );
    resize();
  };

  const refresh = async () => {
    try {
      const list = await api('GET', 'servers');
      admin.servers = arr(list.servers).map(obj);
      const statuses = await Promise.all(admin.servers.map((s) => api('GET', `servers/${enc(str(s.id))}/status`).catch(() => ({}))));
      admin.status = new Map(admin.servers.map((s, i) => [str(s.id), statuses[i] ?? {}]));
      admin.tableError = null;
    } catch (err) {
      admin.tableError = errorText(err);
    }
    renderServers();
    activityFilters.syncServers(admin.servers);
  };

  /** @param {string} id */
  const removeServer = async (id) => {
    try {
      await api('DELETE', `servers/${enc(id)}`);
      admin.confirmRemove = null;
      notify('Server removed. Its builds and deployments are being deleted from Jira.', 'success');
      replace(detail);
    } catch (err) {
      notify(`Could not remove the server: ${errorText(err)}`, 'error');
    }
    await refresh();
  };

  /** @param {string} id @param {boolean} paused */
  const setPaused = async (id, paused) => {
    try {
      await api('PATCH', `servers/${enc(id)}`, { paused });
      notify(paused ? 'Server paused: nothing is polled until you resume it.' : 'Server resumed.', 'info');
    } catch (err) {
      notify(`Could not ${paused ? 'pause' : 'resume'} the server: ${errorText(err)}`, 'error');
    }
    await refresh();
  };

  /** @param {string} id */
  const syncNow = async (id) => {
    try {
      await api('POST', `servers/${enc(id)}/sync`, {});
      notify('Sync requested.', 'info');
    } catch (err) {
      notify(`Could not start a sync: ${errorText(err)}`, 'error');
    }
  };

  const activityFilters = activitySection(activity);
  void refresh();
  const timer = setInterval(() => void refresh(), 5000);
  window.addEventListener('pagehide', () => clearInterval(timer));
}

/** Builds and deployments Jira accepted in the last 24 h (split when the API gives the split). @param {Obj} counts */
function sentCell(counts) {
  const builds = num(pick(counts, 'buildsSent24h', 'builds24h'));
  const deployments = num(pick(counts, 'deploymentsSent24h', 'deployments24h'));
  if (builds !== undefined || deployments !== undefined) return `${builds ?? 0} builds · ${deployments ?? 0} deployments`;
  return str(pick(counts, 'sent24h') ?? '–');
}

/** A backfill is running from the request until `finishedAt` is set. @param {Obj} bf */
function backfillRunning(bf) {
  const state = str(pick(bf, 'state', 'status'));
  if (state) return ['running', 'pending', 'queued', 'in_progress'].includes(state);
  if (typeof bf.running === 'boolean') return bf.running;
  return Object.keys(bf).length > 0 && !pick(bf, 'finishedAt');
}

/** @param {Obj} bf @returns {number | undefined} */
function backfillPercent(bf) {
  const p = num(pick(bf, 'percent', 'progressPercent'));
  if (p !== undefined) return Math.max(0, Math.min(100, Math.round(p)));
  const frac = num(pick(bf, 'progress', 'fraction'));
  if (frac !== undefined) return Math.max(0, Math.min(100, Math.round(frac <= 1 ? frac * 100 : frac)));
  const done = num(pick(bf, 'done', 'processed'));
  const total = num(pick(bf, 'total', 'estimatedTotal'));
  if (done !== undefined && total) return Math.max(0, Math.min(100, Math.round((done / total) * 100)));
  const state = str(pick(bf, 'state', 'status'));
  if (state === 'done' || state === 'finished' || state === 'completed' || pick(bf, 'finishedAt')) return 100;
  return undefined;
}

/**
 * The add/edit server form. A new server, a new URL or new credentials must pass "Test connection"
 * (with exactly these values) before Save is enabled; the API tests again on save.
 * @param {HTMLElement} slot
 * @param {Obj | null} server
 * @param {() => Promise<void>} onSaved
 */
function openServerForm(slot, server, onSaved) {
  const editing = server !== null;
  const auth = obj(server?.auth);
  const name = h('input', { type: 'text', id: 'tcj-f-name', name: 'name', required: true, maxlength: 255, value: str(server?.name) });
  const url = h('input', { type: 'url', id: 'tcj-f-url', name: 'url', required: true, placeholder: 'https://teamcity.example.com', value: str(server?.url) });
  const authType = /** @type {HTMLSelectElement} */ (h('select', { id: 'tcj-f-auth', name: 'authType' }, h('option', { value: 'token' }, 'Access token'), h('option', { value: 'basic' }, 'Username and password')));
  authType.value = str(auth.type) || 'token';
  const username = h('input', { type: 'text', id: 'tcj-f-username', name: 'username', autocomplete: 'off', value: str(auth.username) });
  const secret = h('input', { type: 'password', id: 'tcj-f-secret', name: 'secret', autocomplete: 'new-password', placeholder: editing ? 'Leave empty to keep the current one' : '' });
  const secretLabel = h('label', { for: 'tcj-f-secret' }, 'Token');
  const userRow = h('div', { class: 'tcj-field' }, h('label', { for: 'tcj-f-username' }, 'Username'), username);
  const result = h('div', { class: 'tcj-test-result', id: 'tcj-test-result', 'aria-live': 'polite' });
  const testBtn = h('button', { type: 'button', class: 'tcj-button', id: 'tcj-test' }, 'Test connection');
  const saveBtn = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit', class: 'tcj-button tcj-button-primary', id: 'tcj-save' }, editing ? 'Save' : 'Add server'));
  /** @type {string | null} */
  let testedWith = null;

  const input = (/** @type {HTMLElement} */ el) => /** @type {HTMLInputElement} */ (el).value.trim();
  const body = () => {
    const a = authType.value === 'basic' ? { type: 'basic', username: input(username), password: /** @type {HTMLInputElement} */ (secret).value } : { type: 'token', token: /** @type {HTMLInputElement} */ (secret).value };
    return { name: input(name), url: input(url), auth: a };
  };
  const needsTest = () => !editing || input(secret) !== '' || input(url) !== str(server?.url) || authType.value !== (str(auth.type) || 'token') || (authType.value === 'basic' && input(username) !== str(auth.username));
  const update = () => {
    const basic = authType.value === 'basic';
    userRow.hidden = !basic;
    secretLabel.textContent = basic ? 'Password' : 'Token';
    saveBtn.disabled = needsTest() && testedWith !== JSON.stringify(body());
    saveBtn.title = saveBtn.disabled ? 'Test the connection first' : '';
  };

  testBtn.addEventListener('click', () => {
    void (async () => {
      const b = body();
      if (!b.url || !input(secret)) {
        replace(result, message(editing && !input(secret) ? 'Enter the credentials again to test a changed connection.' : 'Enter the server URL and credentials.', 'error'));
        return resize();
      }
      replace(result, message('Testing the connection…', 'info'));
      resize();
      try {
        const r = await api('POST', 'servers/test', b);
        if (r.ok === true) {
          testedWith = JSON.stringify(b);
          const user = pick(r, 'user');
          const who = typeof user === 'object' ? str(pick(user, 'username', 'name')) : str(user);
          const warnings = arr(r.warnings).map(str).filter(Boolean);
          replace(result, message(`Connected to TeamCity ${str(r.version)}${who ? ` as ${who}` : ''}.`, 'success'), warnings.map((w) => message(w, 'warning')));
        } else {
          testedWith = null;
          const e = pick(r, 'error');
          const text = typeof e === 'object' ? str(pick(e, 'message')) : str(e);
          replace(result, message(`Connection failed: ${text || 'unknown error'}`, 'error'));
        }
      } catch (err) {
        testedWith = null;
        replace(result, message(`Connection failed: ${errorText(err)}`, 'error'));
      }
      update();
      resize();
    })();
  });

  const form = h(
    'form',
    { class: 'tcj-form', id: 'tcj-server-form-el', novalidate: true },
    h('h3', {}, editing ? `Edit ${str(server?.name)}` : 'Add a TeamCity server'),
    h('div', { class: 'tcj-field' }, h('label', { for: 'tcj-f-name' }, 'Name'), name),
    h('div', { class: 'tcj-field' }, h('label', { for: 'tcj-f-url' }, 'Server URL'), url),
    h('div', { class: 'tcj-field' }, h('label', { for: 'tcj-f-auth' }, 'Authentication'), authType),
    userRow,
    h('div', { class: 'tcj-field' }, secretLabel, secret, h('p', { class: 'tcj-help' }, 'Use a read-only service account: it needs "View project" on the projects to track. Secrets are stored encrypted and never shown again.')),
    result,
    h('div', { class: 'tcj-buttons' }, testBtn, saveBtn, h('button', { type: 'button', class: 'tcj-button tcj-button-subtle', onclick: () => (replace(slot), resize()) }, 'Cancel')),
  );
  form.addEventListener('input', () => {
    update();
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      saveBtn.disabled = true;
      try {
        if (!editing) {
          await api('POST', 'servers', body());
        } else {
          /** @type {Obj} */
          const patch = { name: input(name), url: input(url) };
          if (needsTest()) patch.auth = body().auth;
          await api('PATCH', `servers/${enc(str(server?.id))}`, patch);
        }
        replace(slot, message(editing ? 'Server saved.' : 'Server added. The first sync starts now.', 'success'));
        await onSaved();
      } catch (err) {
        replace(result, message(`Could not save: ${errorText(err)}`, 'error'));
        update();
      }
      resize();
    })();
  });
  replace(slot, form);
  update();
  resize();
  name.focus();
}

/**
 * Backfill: choose how far back, start, and watch the progress (status polled every 2 s while running).
 * @param {HTMLElement} slot
 * @param {Obj} server
 */
function openBackfill(slot, server) {
  const id = str(server.id);
  const since = /** @type {HTMLInputElement} */ (h('input', { type: 'date', id: 'tcj-bf-since' }));
  since.value = new Date(Date.now() - 90 * 86400000).toISOString().slice(0, 10);
  const bar = h('div', { class: 'tcj-progress-bar' });
  const progress = h('div', { class: 'tcj-progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, id: 'tcj-bf-progress' }, bar);
  const label = h('div', { class: 'tcj-progress-label', id: 'tcj-bf-label' });
  const out = h('div', {});
  /** @type {number | undefined} */
  let timer;

  const show = (/** @type {Obj} */ status) => {
    const bf = obj(pick(status, 'backfill'));
    const pct = backfillPercent(bf);
    const running = backfillRunning(bf);
    bar.style.width = `${pct ?? 0}%`;
    progress.setAttribute('aria-valuenow', String(pct ?? 0));
    const done = num(pick(bf, 'done', 'processed'));
    const total = num(pick(bf, 'total', 'estimatedTotal'));
    const parts = [];
    if (pct !== undefined) parts.push(`${pct}%`);
    if (done !== undefined) parts.push(`${done}${total ? ` of ${total}` : ''} builds`);
    if (pick(bf, 'since')) parts.push(`since ${str(pick(bf, 'since')).slice(0, 10)}`);
    const err = str(pick(bf, 'lastError', 'error'));
    replace(label, Object.keys(bf).length === 0 ? 'No backfill has run yet.' : `${running ? 'Running' : 'Finished'}: ${parts.join(' · ')}`, err ? h('div', { class: 'tcj-error-text' }, err) : null);
    resize();
    return running;
  };
  const poll = async () => {
    try {
      const running = show(await api('GET', `servers/${enc(id)}/status`));
      if (running && slot.contains(progress)) timer = setTimeout(() => void poll(), 2000);
    } catch (err) {
      replace(out, message(errorText(err), 'error'));
    }
  };
  const start = h('button', {
    type: 'button',
    class: 'tcj-button tcj-button-primary',
    id: 'tcj-bf-start',
    onclick: () =>
      void (async () => {
        clearTimeout(timer);
        try {
          await api('POST', `servers/${enc(id)}/backfill`, { since: new Date(`${since.value}T00:00:00Z`).toISOString() });
          replace(out, message('Backfill started.', 'info'));
          bar.style.width = '0%';
          timer = setTimeout(() => void poll(), 500);
        } catch (err) {
          replace(out, message(`Could not start the backfill: ${errorText(err)}`, 'error'));
        }
        resize();
      })(),
  }, 'Start backfill');
  replace(
    slot,
    h(
      'section',
      { class: 'tcj-section', id: 'tcj-backfill' },
      h('h2', {}, `Backfill — ${str(server.name)}`),
      h('p', { class: 'tcj-help' }, 'Sends the history since the chosen date to Jira, oldest first. It resumes where it stopped after a restart; running it again re-sends only what Jira does not have yet.'),
      h('div', { class: 'tcj-inline' }, h('label', { for: 'tcj-bf-since' }, 'Since'), since, start),
      progress,
      label,
      out,
    ),
  );
  void poll();
}

/**
 * Include/exclude rules and environment rules, with a live preview from the rules API.
 * @param {HTMLElement} slot
 * @param {Obj} server
 */
async function openRules(slot, server) {
  const id = str(server.id);
  replace(slot, h('section', { class: 'tcj-section' }, h('p', { class: 'tcj-loading' }, 'Loading rules…')));
  /** @type {Obj} */
  let loaded;
  try {
    loaded = await api('GET', `servers/${enc(id)}/rules`);
  } catch (err) {
    replace(slot, h('section', { class: 'tcj-section' }, message(`Could not load the rules: ${errorText(err)}`, 'error')));
    return resize();
  }
  const rules = obj(pick(loaded, 'rules') ?? loaded);
  const previewEl = h('div', { id: 'tcj-preview' });
  const out = h('div', {});
  /** @type {number | undefined} */
  let debounce;
  let seq = 0;

  const matcherFields = /** @type {const} */ (['buildTypeId', 'projectId', 'branch']);
  /** @param {string} kind @param {Obj[]} initial */
  const matcherList = (kind, initial) => {
    const list = h('div', { class: 'tcj-rule-list', 'data-list': kind });
    const addRow = (/** @type {Obj} */ m) => {
      const row = h('div', { class: 'tcj-rule-row', 'data-row': kind });
      for (const f of matcherFields) row.append(h('input', { type: 'text', 'data-field': f, placeholder: f === 'branch' ? 'branch glob, e.g. feature/*' : f === 'projectId' ? 'project id' : 'configuration id', value: str(m[f]), 'aria-label': `${kind} ${f}` }));
      row.append(h('button', { type: 'button', class: 'tcj-button tcj-button-subtle', onclick: () => (row.remove(), changed()) }, 'Remove'));
      list.append(row);
    };
    initial.forEach(addRow);
    return { list, add: h('button', { type: 'button', class: 'tcj-button', 'data-add': kind, onclick: () => (addRow({}), changed()) }, kind === 'include' ? 'Add include rule' : 'Add exclude rule') };
  };
  const include = matcherList('include', arr(rules.include).map(obj));
  const exclude = matcherList('exclude', arr(rules.exclude).map(obj));

  const envList = h('div', { class: 'tcj-rule-list', 'data-list': 'environments' });
  const envParam = h('input', { type: 'text', id: 'tcj-env-param', placeholder: 'e.g. env.ENVIRONMENT', value: str(rules.environmentParameter) });
  /** @param {Obj} r */
  const addEnvRow = (r) => {
    const match = obj(r.match);
    const env = obj(r.environment);
    const deployment = /** @type {HTMLSelectElement} */ (h('select', { 'data-field': 'deployment', 'aria-label': 'deployment' }, h('option', { value: '' }, 'By TeamCity type'), h('option', { value: 'true' }, 'Deployment'), h('option', { value: 'false' }, 'Not a deployment')));
    deployment.value = r.deployment === true ? 'true' : r.deployment === false ? 'false' : '';
    const type = /** @type {HTMLSelectElement} */ (h('select', { 'data-field': 'type', 'aria-label': 'environment type' }, h('option', { value: '' }, 'Type from name'), ['production', 'staging', 'testing', 'development', 'unmapped'].map((t) => h('option', { value: t }, t))));
    type.value = str(env.type);
    const rollback = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'data-field': 'rollback', 'aria-label': 'rollback' }));
    rollback.checked = r.rollback === true;
    const row = h(
      'div',
      { class: 'tcj-rule-row tcj-env-row', 'data-row': 'environment' },
      h('input', { type: 'text', 'data-field': 'buildTypeId', placeholder: 'configuration id', value: str(match.buildTypeId), 'aria-label': 'configuration id' }),
      h('input', { type: 'text', 'data-field': 'namePattern', placeholder: 'name, e.g. Deploy*', value: str(match.namePattern), 'aria-label': 'configuration name pattern' }),
      h('input', { type: 'text', 'data-field': 'projectPattern', placeholder: 'project, e.g. Shop*', value: str(match.projectPattern), 'aria-label': 'project pattern' }),
      deployment,
      h('input', { type: 'text', 'data-field': 'name', placeholder: 'environment name', value: str(env.name), 'aria-label': 'environment name' }),
      type,
      h('label', { class: 'tcj-check' }, rollback, 'rollback'),
      h('button', { type: 'button', class: 'tcj-button tcj-button-subtle', onclick: () => (row.remove(), changed()) }, 'Remove'),
    );
    envList.append(row);
  };
  arr(rules.environments).map(obj).forEach(addEnvRow);

  const field = (/** @type {Element} */ row, /** @type {string} */ f) => {
    const el = row.querySelector(`[data-field="${f}"]`);
    if (el instanceof HTMLInputElement && el.type === 'checkbox') return el.checked;
    return el instanceof HTMLInputElement || el instanceof HTMLSelectElement ? el.value.trim() : '';
  };
  const collect = () => {
    /** @param {Element} row @param {readonly string[]} names @returns {Obj} */
    const fields = (row, names) => {
      /** @type {Obj} */
      const o = {};
      for (const f of names) {
        const v = field(row, f);
        if (v !== '') o[f] = v;
      }
      return o;
    };
    /** @param {HTMLElement} list */
    const matchers = (list) => [...list.querySelectorAll('[data-row]')].map((row) => fields(row, matcherFields)).filter((m) => Object.keys(m).length > 0);
    const environments = [...envList.querySelectorAll('[data-row]')].map((row) => {
      /** @type {Obj} */
      const r = { match: fields(row, ['buildTypeId', 'namePattern', 'projectPattern']) };
      const dep = field(row, 'deployment');
      if (dep === 'true' || dep === 'false') r.deployment = dep === 'true';
      if (field(row, 'rollback') === true) r.rollback = true;
      /** @type {Obj} */
      const env = {};
      if (field(row, 'name')) env.name = field(row, 'name');
      if (field(row, 'type')) env.type = field(row, 'type');
      if (Object.keys(env).length) r.environment = env;
      return r;
    });
    /** @type {Obj} */
    const out = { include: matchers(include.list), exclude: matchers(exclude.list), environments };
    const param = /** @type {HTMLInputElement} */ (envParam).value.trim();
    if (param) out.environmentParameter = param;
    return out;
  };

  /** @param {Obj} res */
  const renderPreview = (res) => {
    const p = obj(pick(res, 'preview') ?? res);
    const envRows = arr(pick(p, 'environments', 'configurations', 'preview')).map(obj);
    const errors = arr(pick(res, 'errors') ?? pick(p, 'errors')).map((e) => (typeof e === 'string' ? e : str(obj(e).message)));
    const tracked = pick(p, 'tracked', 'summary');
    const unresolved = arr(pick(p, 'unresolved')).map(str);
    replace(
      previewEl,
      errors.length ? message(errors.join('\n'), 'error') : null,
      unresolved.length ? message(`TeamCity could not describe ${unresolved.join(', ')} right now: previewed from the id only.`, 'warning') : null,
      tracked !== undefined ? h('p', { class: 'tcj-subtle' }, typeof tracked === 'object' ? `Tracked configurations: ${str(pick(tracked, 'tracked'))} of ${str(pick(tracked, 'total'))}` : str(tracked)) : null,
      table(
        ['Configuration', 'Project', 'Deployment', 'Environment', 'Type', 'Why'],
        envRows.map((r) => {
          const env = obj(r.environment);
          const deployment = r.deployment === true;
          return [
            h('span', {}, str(pick(r, 'name')) || str(r.buildTypeId), h('div', { class: 'tcj-subtle' }, str(r.buildTypeId))),
            str(r.projectName),
            deployment ? lozenge(r.rollback === true ? 'deployment · rollback' : 'deployment', 'current') : lozenge(r.tracked === false ? 'excluded' : 'build', 'default'),
            deployment ? str(env.displayName) : '',
            deployment ? envLozenge(env.type) : '',
            h('span', { class: 'tcj-subtle' }, deployment ? str(env.note) : r.deploymentSource === 'rule' ? `rule ${(num(r.deploymentRule) ?? 0) + 1}` : ''),
          ];
        }),
        'No configurations visible to this server connection yet.',
        { id: 'tcj-preview-table' },
      ),
    );
    resize();
  };

  const refreshPreview = async () => {
    const mine = ++seq;
    try {
      const res = await api('POST', `servers/${enc(id)}/rules/preview`, collect());
      if (mine === seq) renderPreview(res);
    } catch (err) {
      if (mine === seq) replace(previewEl, message(`Preview unavailable: ${errorText(err)}`, 'error'));
      resize();
    }
  };
  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void refreshPreview(), 300);
  };

  const save = h('button', {
    type: 'button',
    class: 'tcj-button tcj-button-primary',
    id: 'tcj-rules-save',
    onclick: () =>
      void (async () => {
        try {
          await api('PUT', `servers/${enc(id)}/rules`, collect());
          replace(out, message('Rules saved. They apply to builds from the next sync on; builds already sent stay in Jira (remove the server to delete its data from Jira).', 'success'));
        } catch (err) {
          replace(out, message(`Could not save the rules: ${errorText(err)}`, 'error'));
        }
        resize();
      })(),
  }, 'Save rules');

  const section = h(
    'section',
    { class: 'tcj-section', id: 'tcj-rules' },
    h('h2', {}, `Rules — ${str(server.name)}`),
    h('h3', {}, 'Tracked configurations and branches'),
    h('p', { class: 'tcj-help' }, 'Everything the service account can see is tracked unless excluded. With include rules, only matching builds are tracked. Exclude wins over include. Branch patterns use * as a wildcard. Excluding something stops new data only: what Jira already shows stays.'),
    h('h4', {}, 'Include'),
    include.list,
    include.add,
    h('h4', {}, 'Exclude'),
    exclude.list,
    exclude.add,
    h('h3', {}, 'Deployment environments'),
    h('p', { class: 'tcj-help' }, 'Rules are checked in order; the first matching rule that sets a value wins. Patterns are globs (Deploy*) or /regular expressions/. Without a type, the type comes from words in the environment name — never a silent guess of production.'),
    envList,
    h('button', { type: 'button', class: 'tcj-button', 'data-add': 'environment', onclick: () => (addEnvRow({ match: {} }), changed()) }, 'Add environment rule'),
    h('div', { class: 'tcj-field' }, h('label', { for: 'tcj-env-param' }, 'Environment parameter'), envParam, h('p', { class: 'tcj-help' }, 'A build parameter whose value names the environment, when set.')),
    h('h3', {}, 'Preview'),
    previewEl,
    h('div', { class: 'tcj-buttons' }, save),
    out,
  );
  section.addEventListener('input', changed);
  section.addEventListener('change', changed);
  replace(slot, section);
  resize();
  await refreshPreview();
}

/**
 * The activity log: recent deliveries with Jira's verdict, filtered by server, issue key and outcome.
 * @param {HTMLElement} section
 */
function activitySection(section) {
  const server = /** @type {HTMLSelectElement} */ (h('select', { id: 'tcj-act-server' }, h('option', { value: '' }, 'All servers')));
  const issue = /** @type {HTMLInputElement} */ (h('input', { type: 'text', id: 'tcj-act-issue', placeholder: 'Issue key, e.g. ABC-123', maxlength: 255 }));
  const outcome = /** @type {HTMLSelectElement} */ (h('select', { id: 'tcj-act-outcome' }, h('option', { value: '' }, 'All outcomes'), h('option', { value: 'accepted' }, 'Accepted'), h('option', { value: 'rejected' }, 'Rejected')));
  const list = h('div', { id: 'tcj-activity-list' });
  /** @type {Map<string, string>} */
  let names = new Map();

  const load = async () => {
    const q = new URLSearchParams({ limit: '50' });
    if (server.value) q.set('serverId', server.value);
    if (issue.value.trim()) q.set('issueKey', issue.value.trim().toUpperCase());
    if (outcome.value) q.set('outcome', outcome.value);
    try {
      const res = await api('GET', `activity?${q.toString()}`);
      const items = arr(pick(res, 'activity', 'deliveries', 'items')).map(obj).filter((d) => !outcome.value || str(d.verdict) === outcome.value);
      replace(
        list,
        table(
          ['When', 'Server', 'Build or deployment', 'Issues', 'Jira’s verdict', 'Jira’s response'],
          items.map((d) => {
            const errors = arr(d.errors).map((e) => (typeof e === 'string' ? e : str(obj(e).message) || JSON.stringify(e)));
            const unknown = arr(pick(d, 'unknownKeys', 'unknownIssueKeys')).map(str);
            return [
              when(pick(d, 'deliveredAt', 'at', 'time')),
              str(pick(d, 'serverName')) || names.get(str(d.serverId)) || str(d.serverId),
              h('span', {}, link(d.url, str(pick(d, 'displayName', 'name')) || `${str(d.kind) || 'build'} ${str(d.buildId)}`), h('div', { class: 'tcj-subtle' }, str(d.kind))),
              arr(d.issueKeys).map(str).join(', '),
              stateLozenge(d.verdict),
              h('div', { class: 'tcj-verbatim' }, errors.map((e) => h('div', {}, e)), unknown.length ? h('div', {}, `Unknown issue keys: ${unknown.join(', ')}`) : null, str(pick(d, 'message', 'reason'))),
            ];
          }),
          'No deliveries match these filters.',
          { id: 'tcj-activity-table' },
        ),
      );
    } catch (err) {
      replace(list, message(`Could not load the activity log: ${errorText(err)}`, 'error'));
    }
    resize();
  };
  replace(
    section,
    h('div', { class: 'tcj-section-head' }, h('h2', {}, 'Activity')),
    h(
      'form',
      { class: 'tcj-inline tcj-filters', id: 'tcj-act-filters' },
      h('label', { for: 'tcj-act-server' }, 'Server'),
      server,
      h('label', { for: 'tcj-act-issue' }, 'Issue'),
      issue,
      h('label', { for: 'tcj-act-outcome' }, 'Outcome'),
      outcome,
      h('button', { type: 'submit', class: 'tcj-button' }, 'Filter'),
    ),
    list,
  );
  section.querySelector('form')?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load();
  });
  server.addEventListener('change', () => void load());
  outcome.addEventListener('change', () => void load());
  void load();
  return {
    /** @param {Obj[]} servers */
    syncServers(servers) {
      names = new Map(servers.map((s) => [str(s.id), str(s.name)]));
      const current = server.value;
      const opts = [h('option', { value: '' }, 'All servers'), ...servers.map((s) => h('option', { value: str(s.id) }, str(s.name)))];
      if (server.options.length !== opts.length || [...server.options].some((o, i) => o.value !== opts[i]?.getAttribute('value') || o.textContent !== opts[i]?.textContent)) {
        server.replaceChildren(...opts);
        server.value = names.has(current) ? current : '';
      }
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Project page

async function projectPage() {
  const projectId = root.dataset.projectId ?? '';
  if (!projectId) return replace(appEl, message('Open this page from a Jira project.', 'error'));
  try {
    const res = await api('GET', `projects/${enc(projectId)}/overview`);
    const builds = arr(pick(res, 'builds')).map(obj);
    const deployments = arr(pick(res, 'deployments')).map(obj);
    const envs = arr(pick(res, 'environments', 'environmentMapping')).map(obj);
    replace(
      appEl,
      h('section', { class: 'tcj-section' }, h('h2', {}, 'Recent builds'), table(['State', 'Build', 'Branch', 'Issues', 'Jira', 'Finished'], builds.map(buildRow), 'No builds for this project yet.', { id: 'tcj-project-builds' })),
      h(
        'section',
        { class: 'tcj-section' },
        h('h2', {}, 'Recent deployments'),
        table(
          ['State', 'Deployment', 'Environment', 'Issues', 'Finished'],
          deployments.map((d) => {
            const mapped = envs.find((e) => str(e.environmentId) !== '' && str(e.environmentId) === str(d.environmentId));
            const env = obj(d.environment ?? mapped?.environment);
            return [stateLozenge(pick(d, 'state', 'jiraState')), buildName(d), h('span', {}, str(pick(env, 'displayName', 'name')) || str(d.environmentId), ' ', envLozenge(env.type)), arr(d.issueKeys).map(str).join(', '), when(pick(d, 'finishedAt', 'lastUpdated', 'updatedAt'))];
          }),
          'No deployments for this project yet.',
          { id: 'tcj-project-deployments' },
        ),
      ),
      h(
        'section',
        { class: 'tcj-section' },
        h('h2', {}, 'Environment mapping'),
        table(
          ['Configuration', 'Server', 'Environment', 'Type', 'Why'],
          envs.map((e) => {
            const env = obj(e.environment ?? e);
            return [str(pick(e, 'configurationName', 'name', 'buildTypeId')), str(pick(e, 'serverName')), str(pick(env, 'displayName', 'name')), envLozenge(env.type), h('span', { class: 'tcj-subtle' }, str(pick(env, 'note')))];
          }),
          'No deployment configurations mapped for this project.',
          { id: 'tcj-project-environments' },
        ),
      ),
    );
  } catch (err) {
    replace(appEl, message(errorText(err), 'error'));
  }
  resize();
}

/** @param {Obj} b */
function buildName(b) {
  const name = str(pick(b, 'displayName', 'name')) || `${str(pick(b, 'configurationName', 'buildTypeName', 'buildTypeId'))} #${str(pick(b, 'number', 'buildId'))}`;
  return h('span', {}, link(pick(b, 'url', 'webUrl'), name), pick(b, 'serverName') ? h('div', { class: 'tcj-subtle' }, str(pick(b, 'serverName'))) : null);
}

/** @param {Obj} b @returns {Child[]} */
function buildRow(b) {
  return [stateLozenge(pick(b, 'state', 'jiraState')), buildName(b), b.branch ? h('code', {}, str(b.branch)) : '', arr(b.issueKeys).map(str).join(', '), verdictLozenge(b.verdict), when(pick(b, 'finishedAt', 'startedAt', 'updatedAt'))];
}

// ------------------------------------------------------------------------------------------------
// Issue page (glance)

async function issuePage() {
  const issueKey = root.dataset.issueKey ?? '';
  if (!issueKey) return replace(appEl, message('Open this panel from a Jira issue.', 'error'));
  try {
    const res = await api('GET', `diagnose/${enc(issueKey)}`);
    const items = arr(pick(res, 'builds', 'items')).map(obj);
    const notes = arr(res.notes).map(str).filter(Boolean);
    const nearMisses = arr(res.nearMisses).map(obj);
    replace(
      appEl,
      str(res.summary) ? h('p', { class: 'tcj-summary', id: 'tcj-issue-summary' }, str(res.summary)) : null,
      notes.map((n) => message(n, 'warning')),
      table(
        ['State', 'Build or deployment', 'Branch', 'Commit', 'Jira', 'Diagnostic'],
        items.map((b) => {
          const foundIn = arr(pick(b, 'foundIn', 'keySources')).map(obj);
          const commits = foundIn.filter((f) => str(f.source) === 'commit').map((f) => str(f.ref)).filter(Boolean);
          const delivery = obj(b.delivery);
          const errors = arr(delivery.errors).map((e) => (typeof e === 'string' ? e : str(obj(e).message) || JSON.stringify(e)));
          const unknown = arr(delivery.unknownKeys).map(str);
          return [
            stateLozenge(pick(b, 'state')),
            h('span', {}, buildName(b), h('div', { class: 'tcj-subtle' }, `${str(b.kind)} · TeamCity: ${str(pick(b, 'teamcityState')) || '?'}`)),
            b.branch ? h('code', {}, str(b.branch)) : '',
            commits.length ? h('span', {}, commits.map((c) => h('code', { class: 'tcj-commit-ref' }, c.slice(0, 12)))) : '',
            verdictLozenge(pick(b, 'verdict')),
            h(
              'div',
              { class: 'tcj-verbatim' },
              str(b.sendError) ? h('div', {}, `Not sent: ${str(b.sendError)}`) : null,
              errors.map((e) => h('div', {}, `Jira: ${e}`)),
              unknown.length ? h('div', {}, `Jira does not know: ${unknown.join(', ')}`) : null,
              b.keyTruncated === true ? h('div', {}, 'The key was dropped: the build mentions more issues than Jira accepts (newest kept).') : null,
              foundIn.length ? h('div', { class: 'tcj-subtle' }, `Key found in: ${foundIn.map((f) => `${str(f.source)}${f.ref ? ` ${str(f.ref)}` : ''}`).join(', ')}`) : null,
            ),
          ];
        }),
        `No TeamCity build or deployment mentioning ${issueKey} has been seen.`,
        { id: 'tcj-issue-table' },
      ),
      nearMisses.length
        ? h(
            'section',
            { class: 'tcj-section' },
            h('h3', {}, 'Almost matched'),
            table(
              ['Server', 'Build', 'Written as', 'Why it did not count'],
              nearMisses.map((n) => [str(n.serverName), str(n.buildId), h('code', {}, str(n.written)), str(n.reason)]),
            ),
          )
        : null,
    );
  } catch (err) {
    replace(appEl, message(errorText(err), 'error'));
  }
  resize();
}

/** @type {Record<string, [string, keyof typeof LOZENGE]>} */
const VERDICT = {
  accepted: ['accepted', 'success'],
  rejected: ['rejected', 'removed'],
  unknown_key: ['unknown issue', 'removed'],
  key_truncated: ['key dropped', 'moved'],
  pending: ['pending', 'current'],
  not_sent: ['not sent', 'moved'],
};
/** @param {unknown} v */
const verdictLozenge = (v) => {
  const [text, kind] = VERDICT[str(v)] ?? [str(v) || 'unknown', 'default'];
  return lozenge(text, kind);
};

// ------------------------------------------------------------------------------------------------

function main() {
  const page = root.dataset.page;
  try {
    if (page === 'admin') adminPage();
    else if (page === 'project') void projectPage();
    else if (page === 'issue') void issuePage();
  } catch (err) {
    console.error(err);
    replace(appEl, message(errorText(err), 'error'));
  }
  resize();
}

main();
