// "Why is ABC-123 missing?" (product.md complaint 1): everything the app knows about one issue key —
// the builds that mention it and where the key was found, whether each was sent and what Jira said,
// builds where the key was dropped by the 100-key cap, near misses (the key written in a way that is
// not read as a key), and the health of the servers and of delivery — with a one-line summary.
// Builds excluded by include/exclude rules are never recorded, so they cannot be listed; the rules in
// force are reported instead.
import type { Tx } from '../../db/database.ts';
import type { JiraIssue } from '../../jira/models.ts';
import { parseRules } from '../../sync/rules.ts';
import type { ServerState } from '../../sync/servers.ts';
import { deliveryHealth, type DeliveryHealth } from './views.ts';

const MAX_BUILDS = 100;

export interface KeySource {
  source: string;
  ref?: string;
}

export type BuildVerdict = 'accepted' | 'rejected' | 'unknown_key' | 'pending' | 'not_sent' | 'key_truncated';

export interface DiagnosedBuild {
  serverId: string;
  serverName: string;
  buildId: number;
  kind: 'build' | 'deployment';
  buildTypeId: string;
  pipelineId: string;
  environmentId: string | null;
  number: string | null;
  branch: string | null;
  teamcityState: string;
  state: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Where the key was found: branch / vcs-branch (ref = the name), commit (ref = change id), pull-request, parameter. */
  foundIn: KeySource[];
  keyTruncated: boolean;
  /** Why the build was recorded but could not be sent (TeamCity gave it no URL…). */
  sendError: string | null;
  sent: boolean;
  pending: boolean;
  verdict: BuildVerdict;
  delivery: { at: Date; verdict: 'accepted' | 'rejected'; errors: unknown[]; unknownKeys: string[] } | null;
}

export interface NearMiss {
  serverId: string;
  serverName: string;
  buildId: number;
  branch: string;
  written: string;
  reason: string;
}

export interface ServerHealth {
  id: string;
  name: string;
  state: ServerState;
  lastSuccessfulPoll: Date | null;
  lastError: string | null;
  problem: string | null;
  rules: { include: number; exclude: number };
}

export interface Diagnosis {
  issueKey: string;
  /** The issue as Jira knows it (app's view); null when Jira has no such issue on this site. */
  issue: { id: string; key: string; projectKey: string } | null;
  summary: string;
  builds: DiagnosedBuild[];
  truncatedIn: DiagnosedBuild[];
  nearMisses: NearMiss[];
  servers: ServerHealth[];
  delivery: DeliveryHealth;
  notes: string[];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Why `key` written somewhere in `text` (case-insensitively) was not read as an issue key, or undefined. */
export function nearMissReason(text: string, key: string): { written: string; reason: string } | undefined {
  const upper = text.toUpperCase();
  const re = new RegExp(`(?<![A-Z0-9])${escapeRegExp(key)}(?![0-9])`, 'g');
  for (const m of upper.matchAll(re)) {
    const i = m.index;
    const written = text.slice(i, i + key.length);
    const project = written.slice(0, written.lastIndexOf('-'));
    const before = i > 0 ? text[i - 1] : '';
    const after = text.slice(i + key.length, i + key.length + 2);
    if (/^[-.]\d/.test(after)) return { written, reason: `"${written}${after}" looks like a version number, so it is not read as an issue key` };
    if (/^[\p{L}]/u.test(after)) return { written, reason: `"${written}" is glued to the letters after it; separate it (e.g. "${key}-…" or "${key}_…")` };
    if (/[a-z]/.test(project) && /[A-Z]/.test(project)) {
      return { written, reason: `"${written}" mixes upper and lower case, which is read as a word; write ${key} (or all lowercase)` };
    }
    if (before === '-' && /[a-z]/.test(project)) {
      return { written, reason: `lowercase "${written}" right after a "-" is not read as a key (it would turn names like "upgrade-node-20" into keys); write it in uppercase (${key})` };
    }
    if (before === '_') return { written, reason: `"${written}" is glued to the word before it by "_"` };
    return { written, reason: `"${written}" was not read as an issue key here` };
  }
  return undefined;
}

interface BuildRowDb {
  server_id: string;
  server_name: string;
  build_id: string;
  kind: 'build' | 'deployment';
  build_type_id: string;
  pipeline_id: string;
  environment_id: string | null;
  number: string | null;
  branch: string | null;
  tc_state: string;
  jira_state: string;
  issue_keys: string[];
  key_sources: Array<{ key: string; source: string; ref?: string }>;
  truncated_keys: string[];
  send_error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  last_usn: string | null;
  pending: boolean;
  d_at: Date | null;
  d_verdict: 'accepted' | 'rejected' | null;
  d_errors: unknown[] | null;
  d_unknown: string[] | null;
}

function diagnosed(r: BuildRowDb, keys: string[]): DiagnosedBuild {
  const has = (list: string[]) => keys.some((k) => list.includes(k));
  const truncated = has(r.truncated_keys) && !has(r.issue_keys);
  const delivery = r.d_at && r.d_verdict ? { at: r.d_at, verdict: r.d_verdict, errors: r.d_errors ?? [], unknownKeys: r.d_unknown ?? [] } : null;
  let verdict: BuildVerdict;
  if (truncated) verdict = 'key_truncated';
  else if (r.pending) verdict = 'pending';
  else if (delivery && has(delivery.unknownKeys)) verdict = 'unknown_key';
  else if (delivery) verdict = delivery.verdict;
  else verdict = 'not_sent';
  return {
    serverId: r.server_id,
    serverName: r.server_name,
    buildId: Number(r.build_id),
    kind: r.kind,
    buildTypeId: r.build_type_id,
    pipelineId: r.pipeline_id,
    environmentId: r.environment_id,
    number: r.number,
    branch: r.branch,
    teamcityState: r.tc_state,
    state: r.jira_state,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    foundIn: r.key_sources.filter((s) => keys.includes(s.key)).map((s) => (s.ref === undefined ? { source: s.source } : { source: s.source, ref: s.ref })),
    keyTruncated: has(r.truncated_keys),
    sendError: r.send_error,
    sent: r.last_usn !== null,
    pending: r.pending,
    verdict,
    delivery,
  };
}

function problemOf(state: ServerState, lastError: string | null, deleting: boolean): string | null {
  if (deleting) return 'being removed';
  switch (state) {
    case 'ok':
      return null;
    case 'paused':
      return 'paused: no builds are read from it';
    case 'auth_failed':
      return 'TeamCity rejects its credentials: nothing is read until they are updated';
    case 'failing':
      return `failing${lastError ? `: ${lastError}` : ''}`;
    case 'degraded':
      return `the last poll failed${lastError ? `: ${lastError}` : ''}`;
  }
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export async function diagnose(tx: Tx, requestedKey: string, issue: JiraIssue | undefined): Promise<Diagnosis> {
  const keys = [...new Set([requestedKey, ...(issue ? [issue.key.toUpperCase()] : [])])];
  const { rows } = await tx.query<BuildRowDb>(
    `SELECT b.server_id, s.name AS server_name, b.build_id::text, b.kind, b.build_type_id, b.pipeline_id, b.environment_id, b.number,
            b.branch, b.tc_state, b.jira_state, b.issue_keys, b.key_sources, b.truncated_keys, b.send_error, b.started_at,
            b.finished_at, b.last_usn::text,
            EXISTS (SELECT 1 FROM outbox o WHERE o.server_id = b.server_id AND o.build_id = b.build_id) AS pending,
            d.delivered_at AS d_at, d.verdict AS d_verdict, d.errors AS d_errors, d.unknown_keys AS d_unknown
       FROM builds b
       JOIN teamcity_servers s ON s.id = b.server_id
       LEFT JOIN LATERAL (
         SELECT delivered_at, verdict, errors, unknown_keys FROM deliveries dd
          WHERE dd.server_id = b.server_id AND dd.build_id = b.build_id
          ORDER BY dd.delivered_at DESC, dd.id DESC LIMIT 1) d ON true
      WHERE b.issue_keys && $1::text[] OR b.truncated_keys && $1::text[]
      ORDER BY coalesce(b.finished_at, b.started_at, b.updated_at) DESC, b.build_id DESC
      LIMIT ${MAX_BUILDS}`,
    [keys],
  );
  const all = rows.map((r) => diagnosed(r, keys));
  const builds = all.filter((b) => b.verdict !== 'key_truncated');
  const truncatedIn = all.filter((b) => b.verdict === 'key_truncated');

  const nearRows = (
    await tx.query<{ server_id: string; server_name: string; build_id: string; branch: string }>(
      `SELECT b.server_id, s.name AS server_name, b.build_id::text, b.branch FROM builds b JOIN teamcity_servers s ON s.id = b.server_id
        WHERE b.branch IS NOT NULL AND strpos(upper(b.branch), $1) > 0 AND NOT (b.issue_keys && $2::text[])
        ORDER BY b.updated_at DESC LIMIT 200`,
      [requestedKey, keys],
    )
  ).rows;
  const nearMisses: NearMiss[] = [];
  for (const r of nearRows) {
    const why = nearMissReason(r.branch, requestedKey);
    if (why && nearMisses.length < 20) nearMisses.push({ serverId: r.server_id, serverName: r.server_name, buildId: Number(r.build_id), branch: r.branch, ...why });
  }

  const servers: ServerHealth[] = (
    await tx.query<{ id: string; name: string; state: ServerState; deleting_at: Date | null; rules: unknown; last_success_at: Date | null; last_error: string | null }>(
      `SELECT s.id, s.name, s.state, s.deleting_at, s.rules, ss.last_success_at, ss.last_error
         FROM teamcity_servers s LEFT JOIN sync_state ss ON ss.server_id = s.id ORDER BY s.created_at, s.id`,
    )
  ).rows.map((s) => {
    let rules = { include: 0, exclude: 0 };
    try {
      const parsed = parseRules(s.rules);
      rules = { include: parsed.include.length, exclude: parsed.exclude.length };
    } catch {
      // Stored rules that no longer validate are reported as none.
    }
    return {
      id: s.id,
      name: s.name,
      state: s.state,
      lastSuccessfulPoll: s.last_success_at,
      lastError: s.last_error,
      problem: problemOf(s.state, s.last_error, s.deleting_at !== null),
      rules,
    };
  });

  const delivery = await deliveryHealth(tx);

  const notes: string[] = [];
  const key = requestedKey;
  if (issue && issue.key.toUpperCase() !== requestedKey) notes.push(`Jira resolves ${requestedKey} to ${issue.key} (moved or renamed); builds mentioning either are listed.`);
  if (!issue) notes.push(`Jira has no issue ${key} on this site (or the app may not see it).`);
  const ruled = servers.filter((s) => s.rules.include + s.rules.exclude > 0);
  if (ruled.length) {
    notes.push(`Include/exclude rules are set on ${ruled.map((s) => s.name).join(', ')}: builds they exclude are never recorded, so they cannot appear here.`);
  }
  const troubled = servers.filter((s) => s.problem !== null);
  for (const s of troubled) notes.push(`Server "${s.name}" is ${s.problem}.`);
  if (delivery.jiraAuthError) notes.push(`Jira refuses the app's credentials, so nothing is delivered until the app is reinstalled: ${delivery.jiraAuthError}`);
  else if (delivery.pausedUntil) notes.push(`Delivery to Jira is paused until ${delivery.pausedUntil.toISOString()}${delivery.lastError ? `: ${delivery.lastError}` : ''}.`);

  const summary = summarize({ key, issue, builds, truncatedIn, nearMisses, servers, troubled, delivery });
  return {
    issueKey: key,
    issue: issue ? { id: issue.id, key: issue.key, projectKey: issue.fields.project.key } : null,
    summary,
    builds,
    truncatedIn,
    nearMisses,
    servers,
    delivery,
    notes,
  };
}

function summarize(x: {
  key: string;
  issue: JiraIssue | undefined;
  builds: DiagnosedBuild[];
  truncatedIn: DiagnosedBuild[];
  nearMisses: NearMiss[];
  servers: ServerHealth[];
  troubled: ServerHealth[];
  delivery: Diagnosis['delivery'];
}): string {
  const { key, builds } = x;
  const serverTrouble = x.troubled.length ? ` Note: server "${x.troubled[0]!.name}" is ${x.troubled[0]!.problem}.` : '';
  if (builds.length > 0) {
    const count = (v: BuildVerdict) => builds.filter((b) => b.verdict === v).length;
    const accepted = count('accepted');
    const unknown = count('unknown_key');
    const rejected = count('rejected');
    const pending = count('pending');
    const notSent = builds.filter((b) => b.verdict === 'not_sent');
    const seen = `${plural(builds.length, 'build')} mention ${key}`;
    if (accepted > 0) {
      const extra = [unknown ? `${unknown} reported it as an unknown issue key` : '', rejected ? `${rejected} rejected` : '', pending ? `${pending} waiting to be sent` : '']
        .filter(Boolean)
        .join(', ');
      return `${seen}; Jira accepted ${accepted}${extra ? ` (${extra})` : ''}. If they do not show in the issue, the user may lack "View development tools" on the project.${serverTrouble}`;
    }
    if (unknown > 0) {
      return `${seen}, but Jira does not know ${key}: it reported it as an unknown issue key${x.issue ? '' : ' (no such issue on this site)'}. Check the key, and that the project exists on this site.${serverTrouble}`;
    }
    if (rejected > 0) {
      const first = builds.find((b) => b.verdict === 'rejected');
      const msg = (first?.delivery?.errors[0] as { message?: unknown } | undefined)?.message;
      return `${seen}, but Jira rejected them${typeof msg === 'string' ? `: ${msg}` : ''}.${serverTrouble}`;
    }
    if (pending > 0) {
      const why = x.delivery.jiraAuthError
        ? ' Delivery is stopped: Jira refuses the app’s credentials (reinstall the app).'
        : x.delivery.pausedUntil
          ? ` Delivery is paused until ${x.delivery.pausedUntil.toISOString()}${x.delivery.lastError ? ` (${x.delivery.lastError})` : ''}.`
          : '';
      return `${seen}; they are waiting to be sent to Jira.${why}${serverTrouble}`;
    }
    const err = notSent.find((b) => b.sendError)?.sendError;
    return `${seen}, but they were not sent to Jira${err ? `: ${err}` : ''}.${serverTrouble}`;
  }
  if (x.truncatedIn.length > 0) {
    return `${key} was found in ${plural(x.truncatedIn.length, 'build')} but dropped: they mention more issue keys than Jira accepts per build (100), and newer keys come first.${serverTrouble}`;
  }
  if (x.nearMisses.length > 0) {
    const n = x.nearMisses[0]!;
    return `No build was linked to ${key}, but branch "${n.branch}" mentions it: ${n.reason}.${serverTrouble}`;
  }
  if (x.servers.length === 0) return `No TeamCity server is connected, so no build can mention ${key}.`;
  if (x.troubled.length) {
    return `No build seen so far mentions ${key}. Server "${x.troubled[0]!.name}" is ${x.troubled[0]!.problem}, so recent builds may not have been read.`;
  }
  return `No TeamCity build seen so far mentions ${key} in its branch name or commit messages${x.issue ? '' : `, and Jira has no issue ${key} on this site`}.`;
}
