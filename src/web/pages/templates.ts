// The HTML shells of the three pages. They carry no tenant data: only what Jira put in the signed
// page URL (project id/key, issue key), escaped, as data attributes for the browser module, which
// then fetches the data through the admin API (where Jira permissions are checked per call).
import { html, type SafeHtml } from './html.ts';

export type PageKind = 'admin' | 'project' | 'issue';

export interface ShellOptions {
  page: PageKind;
  nonce: string;
  allJsUrl: string;
  scriptUrl: string;
  styleUrl: string;
  /** Page parameters from the (signed) query string; rendered escaped. */
  params: { projectId?: string | undefined; projectKey?: string | undefined; issueKey?: string | undefined };
}

const TITLES: Record<PageKind, string> = {
  admin: 'TeamCity servers',
  project: 'TeamCity',
  issue: 'TeamCity builds',
};

function heading(o: ShellOptions): SafeHtml {
  if (o.page === 'project') return html`<h1>TeamCity${o.params.projectKey ? html` <span class="tcj-subtle">· ${o.params.projectKey}</span>` : ''}</h1>`;
  if (o.page === 'issue') return html`<h1 class="tcj-h-small">Builds and deployments${o.params.issueKey ? html` <span class="tcj-subtle">· ${o.params.issueKey}</span>` : ''}</h1>`;
  return html`<h1>TeamCity servers</h1>`;
}

export function renderShell(o: ShellOptions): string {
  const title = `${TITLES[o.page]}${o.params.projectKey ? ` · ${o.params.projectKey}` : ''}${o.params.issueKey ? ` · ${o.params.issueKey}` : ''}`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link rel="stylesheet" href="${o.styleUrl}">
<script src="${o.allJsUrl}" nonce="${o.nonce}" data-options="sizeToParent:false"></script>
<script type="module" src="${o.scriptUrl}" nonce="${o.nonce}"></script>
</head>
<body>
<main id="tcj-root" class="tcj tcj-page-${o.page}" data-page="${o.page}" data-project-id="${o.params.projectId ?? ''}" data-project-key="${o.params.projectKey ?? ''}" data-issue-key="${o.params.issueKey ?? ''}">
${heading(o)}
<noscript><p class="tcj-message tcj-message-error">This page needs JavaScript.</p></noscript>
<div id="tcj-app" aria-live="polite"><p class="tcj-loading">Loading…</p></div>
</main>
</body>
</html>
`.value;
}
