// What the benchmark counts: requests seen by the simulators (and their floors), end-to-end latency
// from a build finishing in the TeamCity simulator to the Jira simulator accepting it, and the CPU
// profile summary of a worker.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecordedRequest as JiraRequest } from '../../sandbox/jira/server.ts';
import type { TeamCitySimulator } from '../../sandbox/teamcity/server.ts';

export const round = (n: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

export function percentiles(values: number[]): { n: number; p50: number | null; p95: number | null; p99: number | null; max: number | null } {
  if (values.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null };
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  return { n: s.length, p50: at(50), p95: at(95), p99: at(99), max: s.at(-1)! };
}

// ------------------------------------------------------------------------------------------ TeamCity

export interface TcCount {
  requests: number;
  /** GET /app/rest/server — every poll of the app starts with one. */
  serverRequests: number;
  builds: number;
  /** Builds-list requests of a backfill window (their locator bounds queuedDate from above). */
  backfillPages: number;
  build: number;
  changes: number;
  other: number;
}

/** Requests to the TeamCity simulators made with the given accounts (the app's or the baseline's). */
export function countTeamCity(sims: TeamCitySimulator[], users: Set<string>): TcCount {
  const c: TcCount = { requests: 0, serverRequests: 0, builds: 0, backfillPages: 0, build: 0, changes: 0, other: 0 };
  for (const sim of sims) {
    for (const r of sim.requests()) {
      if (!r.auth.username || !users.has(r.auth.username)) continue;
      c.requests++;
      if (/\/app\/rest\/server$/.test(r.path)) c.serverRequests++;
      else if (/\/app\/rest\/builds$/.test(r.path)) {
        c.builds++;
        if (/queuedDate:\(date:[^)]*,condition:before\)/.test(r.query.locator ?? '')) c.backfillPages++;
      }
      else if (/\/app\/rest\/builds\//.test(r.path)) c.build++;
      else if (/\/app\/rest\/changes$/.test(r.path)) c.changes++;
      else c.other++;
    }
  }
  return c;
}

// ------------------------------------------------------------------------------------------ Jira

interface BulkBody {
  properties?: Record<string, string>;
  builds?: { pipelineId: string; buildNumber: number; state: string }[];
  deployments?: { pipeline: { id: string }; environment: { id: string }; deploymentSequenceNumber: number; state: string }[];
}

interface BulkResponse {
  acceptedBuilds?: { pipelineId: string; buildNumber: number }[];
  acceptedDeployments?: { pipelineId: string; environmentId: string; deploymentSequenceNumber: number }[];
}

export interface JiraCount {
  /** Every API request to these sites. */
  requests: number;
  bulkRequests: number;
  /** Entity updates sent (an entity sent twice counts twice). */
  entityUpdates: number;
  /** Distinct builds/deployments Jira accepted. */
  entitiesAccepted: number;
  /**
   * The fewest bulk requests the API allows for the distinct entities sent: ceil(n/100) per site,
   * connection (the request-level `properties`) and kind (builds and deployments are two APIs).
   */
  floor: number;
  /** Per accepted entity in a final state: the first time Jira accepted it (ms), keyed `<connectionId>/<buildId>`. */
  acceptedFinalAt: Map<string, number>;
  lastAcceptedAt: number | undefined;
}

const FINAL = new Set(['successful', 'failed', 'cancelled', 'rolled_back', 'unknown']);

export function countJira(requests: JiraRequest[], sites: Set<string>): JiraCount {
  const c: JiraCount = { requests: 0, bulkRequests: 0, entityUpdates: 0, entitiesAccepted: 0, floor: 0, acceptedFinalAt: new Map(), lastAcceptedAt: undefined };
  const groups = new Map<string, Set<string>>();
  const accepted = new Set<string>();
  for (const r of requests) {
    if (r.kind !== 'api' || !r.site || !sites.has(r.site)) continue;
    c.requests++;
    if (r.method !== 'POST' || !/^\/rest\/(builds|deployments)\/0\.1\/bulk$/.test(r.path)) continue;
    c.bulkRequests++;
    const body = r.body as BulkBody | undefined;
    const res = (r.status >= 200 && r.status < 300 ? r.response : undefined) as BulkResponse | undefined;
    const conn = body?.properties?.connectionId ?? '?';
    const kind = r.path.includes('deployments') ? 'deployment' : 'build';
    const group = groups.get(`${r.site}|${conn}|${kind}`) ?? new Set<string>();
    groups.set(`${r.site}|${conn}|${kind}`, group);
    const acceptedKeys = new Set<string>([
      ...(res?.acceptedBuilds ?? []).map((a) => `b|${a.pipelineId}|${a.buildNumber}`),
      ...(res?.acceptedDeployments ?? []).map((a) => `d|${a.pipelineId}|${a.environmentId}|${a.deploymentSequenceNumber}`),
    ]);
    for (const b of body?.builds ?? []) {
      c.entityUpdates++;
      const k = `b|${b.pipelineId}|${b.buildNumber}`;
      group.add(k);
      if (!acceptedKeys.has(k)) continue;
      accepted.add(`${r.site}|${k}`);
      c.lastAcceptedAt = Math.max(c.lastAcceptedAt ?? 0, r.at);
      const key = `${b.pipelineId.split('/')[0]}/${b.buildNumber}`;
      if (FINAL.has(b.state) && !c.acceptedFinalAt.has(key)) c.acceptedFinalAt.set(key, r.at);
    }
    for (const d of body?.deployments ?? []) {
      c.entityUpdates++;
      const k = `d|${d.pipeline.id}|${d.environment.id}|${d.deploymentSequenceNumber}`;
      group.add(k);
      if (!acceptedKeys.has(k)) continue;
      accepted.add(`${r.site}|${k}`);
      c.lastAcceptedAt = Math.max(c.lastAcceptedAt ?? 0, r.at);
      const key = `${d.pipeline.id.split('/')[0]}/${d.deploymentSequenceNumber}`;
      if (FINAL.has(d.state) && !c.acceptedFinalAt.has(key)) c.acceptedFinalAt.set(key, r.at);
    }
  }
  for (const g of groups.values()) c.floor += Math.ceil(g.size / 100);
  c.entitiesAccepted = accepted.size;
  return c;
}

// ------------------------------------------------------------------------------------------ CPU profile

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** Self time per function (top N) and per file/package, from the .cpuprofile files in a folder. */
export function summarizeProfiles(dir: string, top = 25): { totalMs: number; functions: { fn: string; selfMs: number; pct: number }[]; byArea: { area: string; selfMs: number; pct: number }[] } | undefined {
  let files: string[];
  try {
    files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return undefined;
  }
  if (files.length === 0) return undefined;
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i]!);
      const dt = (p.timeDeltas[i] ?? 0) / 1000;
      if (!n || n.callFrame.functionName === '(idle)') continue; // busy time only
      total += dt;
      const url = n.callFrame.url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '');
      const name = `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url.replace(/^.*node_modules\//, '')}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
      byFn.set(name, (byFn.get(name) ?? 0) + dt);
      const area = !url
        ? n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native/V8)'
        : url.includes('node_modules/')
          ? `npm:${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)![1]}`
          : url.startsWith('node:')
            ? 'node core'
            : url.replace(/\/[^/]+$/, '/');
      byArea.set(area, (byArea.get(area) ?? 0) + dt);
    }
  }
  const list = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => ({ k, selfMs: Math.round(v), pct: round((100 * v) / total, 1) }));
  return {
    totalMs: Math.round(total),
    functions: list(byFn).map((x) => ({ fn: x.k, selfMs: x.selfMs, pct: x.pct })),
    byArea: list(byArea).map((x) => ({ area: x.k, selfMs: x.selfMs, pct: x.pct })),
  };
}
