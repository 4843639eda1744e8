// HTML view of a simulated site for the demo: every issue with the builds and deployments apps sent,
// grouped like Jira's Development panel (builds: state, name, link; deployments: by environment).
import type { Site, StoredBuild, StoredDeployment } from './site.ts';

function text(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
  return JSON.stringify(v) ?? '';
}

function esc(v: unknown): string {
  return text(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

function safeHref(url: unknown): string {
  return typeof url === 'string' && /^https?:\/\//i.test(url) ? esc(url) : '#';
}

const STATE_COLOURS: Record<string, string> = {
  successful: '#1f845a', failed: '#c9372c', in_progress: '#0c66e4', pending: '#626f86', cancelled: '#a54800',
  rolled_back: '#a54800', unknown: '#626f86',
};

function stateBadge(state: unknown): string {
  const s = typeof state === 'string' ? state : 'unknown';
  return `<span class="state" style="background:${STATE_COLOURS[s] ?? '#626f86'}">${esc(s.replace('_', ' '))}</span>`;
}

function buildsHtml(builds: StoredBuild[]): string {
  if (builds.length === 0) return '<p class="none">No builds</p>';
  const sorted = [...builds].sort((a, b) => a.pipelineId.localeCompare(b.pipelineId) || b.buildNumber - a.buildNumber);
  return `<table><tr><th>State</th><th>Build</th><th>Pipeline</th><th>#</th><th>Tests</th><th>Last updated</th></tr>${sorted
    .map((b) => {
      const t = b.data['testInfo'] as { totalNumber?: number; numberPassed?: number; numberFailed?: number } | undefined;
      return `<tr><td>${stateBadge(b.data['state'])}</td><td><a href="${safeHref(b.data['url'])}">${esc(b.data['displayName'])}</a>${b.data['label'] ? ` <small>${esc(b.data['label'])}</small>` : ''}</td><td>${esc(b.pipelineId)}</td><td>${b.buildNumber}</td><td>${t ? `${esc(t.numberPassed)}/${esc(t.totalNumber)} passed, ${esc(t.numberFailed)} failed` : ''}</td><td>${esc(b.data['lastUpdated'])}</td></tr>`;
    })
    .join('')}</table>`;
}

function deploymentsHtml(deployments: StoredDeployment[]): string {
  if (deployments.length === 0) return '<p class="none">No deployments</p>';
  const byEnv = new Map<string, StoredDeployment[]>();
  for (const d of deployments) {
    const env = d.data['environment'] as { displayName?: string; type?: string } | undefined;
    const label = `${env?.displayName ?? d.environmentId} (${env?.type ?? 'unmapped'})`;
    byEnv.set(label, [...(byEnv.get(label) ?? []), d]);
  }
  return [...byEnv.entries()]
    .map(([env, list]) => {
      const sorted = list.sort((a, b) => b.deploymentSequenceNumber - a.deploymentSequenceNumber);
      return `<h4>${esc(env)}</h4><table><tr><th>State</th><th>Deployment</th><th>Pipeline</th><th>#</th><th>Last updated</th></tr>${sorted
        .map((d) => {
          const pipeline = d.data['pipeline'] as { displayName?: string } | undefined;
          return `<tr><td>${stateBadge(d.data['state'])}</td><td><a href="${safeHref(d.data['url'])}">${esc(d.data['displayName'])}</a></td><td>${esc(pipeline?.displayName ?? d.pipelineId)}</td><td>${d.deploymentSequenceNumber}</td><td>${esc(d.data['lastUpdated'])}</td></tr>`;
        })
        .join('')}</table>`;
    })
    .join('');
}

export function renderSitePage(site: Site, baseUrl: string, onlyIssue?: string): string {
  const issues = site.issues.filter((i) => onlyIssue === undefined || i.key === onlyIssue);
  const apps = [...site.installations.values()].map((i) => `${esc(i.appKey)} (${i.enabled ? 'enabled' : 'disabled'})`).join(', ') || 'none';
  const body = issues
    .map((i) => {
      const builds = site.buildsForIssue(i.key);
      const deployments = site.deploymentsForIssue(i.key);
      return `<section id="${esc(i.key)}"><h2><a href="${esc(baseUrl)}/browse/${esc(i.key)}">${esc(i.key)}</a> ${esc(i.summary)}</h2>
<div class="panel"><h3>Builds (${builds.length})</h3>${buildsHtml(builds)}<h3>Deployments (${deployments.length})</h3>${deploymentsHtml(deployments)}</div></section>`;
    })
    .join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Jira simulator — ${esc(site.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#172b4d}table{border-collapse:collapse;margin:.3em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
.state{color:#fff;border-radius:3px;padding:0 .4em;font-size:.8em;text-transform:uppercase}.panel{margin-left:1em}.none{color:#888}</style></head>
<body><h1>Jira Cloud simulator — site “${esc(site.name)}”</h1><p>Base URL <code>${esc(baseUrl)}</code> · client key <code>${esc(site.clientKey)}</code> · apps: ${apps}</p>
${body || '<p>No such issue.</p>'}</body></html>`;
}
