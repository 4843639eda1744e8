// One poll of one TeamCity connection (reference/teamcity-rest.md §5.4), run by the worker that
// holds the server's lease:
//  1. the server's own clock (`server.currentTime`) gives the cursor, never ours;
//  2. finished builds: started after cursor − window (the scan cut-off) and finished after
//     cursor − overlap, every branch, canceled and failed-to-start included, no personal builds;
//  3. running and queued builds; ones that vanished since the last poll are fetched by id, so a
//     build longer than the window or canceled in the queue is never missed;
//  4. everything that changed is recorded and queued for Jira in ONE transaction that also advances
//     the cursor, and only while this worker still holds the lease;
//  5. then a slice of the backfill, if one is pending (history, oldest first, resumable).
import type { Dispatcher } from 'undici';
import type { Database, Tx } from '../db/database.ts';
import type { Secrets } from '../crypto/secrets.ts';
import type { Logger } from '../log.ts';
import { TeamCityClient, type TcPage, type TeamCityClientOptions } from '../teamcity/client.ts';
import { formatTcDate, parseTcDate, tryParseTcDate } from '../teamcity/dates.ts';
import { TeamCityAuthError } from '../teamcity/errors.ts';
import { buildFields, buildsPageFields } from '../teamcity/fields.ts';
import { activeBuildsLocator, backfillBuildsLocator, finishedBuildsLocator } from '../teamcity/locator.ts';
import type { TcBuild } from '../teamcity/types.ts';
import { pollLagSeconds, pollPhaseSeconds, pollsTotal } from '../metrics.ts';
import { recordBuilds } from './record.ts';
import { parseRules, type ServerRules } from './rules.ts';
import { getConnection, setServerState, type ServerRow } from './servers.ts';
import type { PollLease } from './worker.ts';

export interface SyncSettings {
  /** The longest build we expect: the start-time window of the finished-builds query. */
  maxBuildDurationMs: number;
  /** Re-read builds that finished this long before the cursor (clock jitter, commit lag). */
  overlapMs: number;
  activeIntervalMs: number;
  idleIntervalMs: number;
  /** The active interval holds this long after the server was last seen busy. */
  activeHoldMs: number;
  /** Changes fetched inline per build (commit messages for issue keys). */
  inlineChanges: number;
  /** Backfill: the first start-time window, and how long one poll may spend on backfill. */
  backfillWindowMs: number;
  backfillBudgetMs: number;
  /** After failures: first retry delay, doubling up to the cap. */
  failureBackoffMs: number;
  maxFailureBackoffMs: number;
}

export const DEFAULT_SYNC_SETTINGS: SyncSettings = {
  maxBuildDurationMs: 48 * 3600_000,
  overlapMs: 5 * 60_000,
  activeIntervalMs: 15_000,
  idleIntervalMs: 60_000,
  activeHoldMs: 10 * 60_000,
  inlineChanges: 100,
  backfillWindowMs: 24 * 3600_000,
  backfillBudgetMs: 20_000,
  failureBackoffMs: 15_000,
  maxFailureBackoffMs: 30 * 60_000,
};

export interface PollerDeps {
  db: Database;
  secrets: Secrets;
  dispatcher: Dispatcher;
  log: Logger;
  settings?: Partial<SyncSettings>;
  /** Overrides for tests (timeouts, retries). */
  teamcity?: Partial<TeamCityClientOptions>;
}

export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

interface SyncStateRow {
  cursor_time: Date | null;
  active_build_ids: string[];
  consecutive_failures: number;
  backfill_since: Date | null;
  backfill_until: Date | null;
  backfill_cursor: Date | null;
  backfill_finished_at: Date | null;
  lease_owner: string | null;
  next_poll_at: Date;
  last_activity_at: Date | null;
  last_error: string | null;
  server_offset_min: number;
  poll_interval_s: number;
}

export interface PollReport {
  finished: number;
  active: number;
  vanished: number;
  recorded: number;
  queued: number;
  /** Builds whose data could not be mapped (logged). */
  skipped: number;
  backfilled: number;
}

/** Takes the pages of a query into one list (each page is bounded; the query decides how many). */
async function collect(pages: AsyncIterable<TcPage<TcBuild>>): Promise<TcBuild[]> {
  const out: TcBuild[] = [];
  for await (const page of pages) out.push(...page.items);
  return out;
}

/**
 * Inline changes are capped; a build that hit the cap gets its full list from the changes endpoint
 * (paged), so keys in older commits of a large merge are not silently lost. Costs requests only for
 * such builds.
 */
async function completeChanges(client: TeamCityClient, builds: TcBuild[], inlineLimit: number): Promise<TcBuild[]> {
  for (const b of builds) {
    if ((b.changes?.change?.length ?? 0) >= inlineLimit) b.changes = { change: await client.allChanges(b.id) };
  }
  return builds;
}

const byTime = (b: TcBuild) => (tryParseTcDate(b.finishDate) ?? tryParseTcDate(b.startDate) ?? tryParseTcDate(b.queuedDate))?.getTime() ?? 0;

/** How long a poll's lease lasts from its last commit (the worker's default lease). */
const POLL_LEASE_SECONDS = 300;

/**
 * Advances sync_state only if this claim still holds the lease (otherwise the whole transaction
 * rolls back), and extends the lease, so that a long backfill keeps its server.
 */
async function fencedUpdate(tx: Tx, serverId: string, leaseToken: string, set: string, params: unknown[], opts: { release?: boolean } = {}): Promise<void> {
  // Releasing here, with the work it concludes, saves the separate release write of an idle poll.
  const lease = opts.release ? 'lease_owner = NULL, lease_until = NULL' : `lease_until = now() + make_interval(secs => ${POLL_LEASE_SECONDS})`;
  const { rowCount } = await tx.query(
    `UPDATE sync_state SET ${set}, ${lease}
      WHERE server_id = $1 AND lease_owner = $2 AND lease_until > now()`,
    [serverId, leaseToken, ...params],
  );
  if (!rowCount) throw new LeaseLostError(`lease on server ${serverId} lost`);
}

/**
 * Keeps a poll's lease while it runs: the claim's lease is short (so a poll with nothing to write
 * just lets it lapse), which a slow poll could outlive. Renews at a third of the lease; a lost lease
 * is noticed by the fenced writes, not here.
 */
function renewWhileRunning(db: Database, tenantId: string, serverId: string, lease: PollLease, log: Logger): { renewed: () => boolean; stop: () => Promise<void> } {
  let renewed = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  const timer = setInterval(
    () => {
      inFlight = db
        .withTenant(tenantId, (tx) =>
          tx.query('UPDATE sync_state SET lease_until = now() + make_interval(secs => $3) WHERE server_id = $1 AND lease_owner = $2 AND lease_until > now()', [
            serverId,
            lease.token,
            lease.seconds,
          ]),
        )
        .then((r) => (renewed ||= (r.rowCount ?? 0) > 0))
        .catch((err: unknown) => log.warn({ err }, 'could not renew the poll lease'));
    },
    Math.max(100, (lease.seconds * 1000) / 3),
  );
  return {
    renewed: () => renewed,
    stop: async () => {
      clearInterval(timer);
      await inFlight;
    },
  };
}

/** The same build ids in any order (pg returns bigint[] elements as strings). */
function sameIds(stored: readonly (string | number)[], seen: readonly number[]): boolean {
  const ids = new Set(stored.map(Number));
  return ids.size === stored.length && ids.size === seen.length && seen.every((id) => ids.has(id));
}

export async function pollServer(deps: PollerDeps, tenantId: string, serverId: string, lease: PollLease): Promise<PollReport> {
  const settings = { ...DEFAULT_SYNC_SETTINGS, ...deps.settings };
  const log = deps.log.child({ tenantId, serverId });
  const report: PollReport = { finished: 0, active: 0, vanished: 0, recorded: 0, queued: 0, skipped: 0, backfilled: 0 };

  const loading = pollPhaseSeconds.startTimer({ phase: 'load' });
  const loaded = await deps.db.withTenant(tenantId, async (tx) => {
    const conn = await getConnection(tx, deps.secrets, serverId);
    const state = (await tx.query<SyncStateRow>('SELECT * FROM sync_state WHERE server_id = $1', [serverId])).rows[0];
    const rules = (await tx.query<{ rules: unknown }>('SELECT rules FROM teamcity_servers WHERE id = $1', [serverId])).rows[0]?.rules;
    return conn && state ? { ...conn, state, rules: parseRules(rules) } : undefined;
  });
  loading();
  if (!loaded || loaded.state.lease_owner !== lease.token) return report;
  const { server, auth, state, rules } = loaded;
  pollLagSeconds.observe(Math.max(0, (Date.now() - lease.dueAt.getTime()) / 1000));
  const renewal = renewWhileRunning(deps.db, tenantId, serverId, lease, log);

  const client = new TeamCityClient({ baseUrl: server.url, auth, dispatcher: deps.dispatcher, log, ...deps.teamcity });
  let leaseReleased = false;
  const record = async (tx: Tx, builds: TcBuild[]) => {
    const outcomes = await recordBuilds(tx, tenantId, server, rules, builds, {
      // A build whose data breaks the mapping (a TeamCity quirk we have not met) is skipped and
      // logged, so that one odd build cannot stop its whole server; database errors still fail
      // the poll. The mapping runs before any write of that build, so nothing half-done remains.
      onUnmappable: (b, err) => {
        log.warn({ err, buildId: b.id }, 'build skipped: its data could not be mapped');
        report.skipped++;
      },
    });
    for (const r of outcomes) {
      if (r === 'queued' || r === 'recorded') report.recorded++;
      if (r === 'queued') report.queued++;
    }
  };

  try {
    const reading = pollPhaseSeconds.startTimer({ phase: 'teamcity' });
    const { server: tcServer, clock } = await client.getServerClock();
    const serverNow = parseTcDate(tcServer.currentTime!);
    // If the server's clock went back (a correction), its "now" is the safer base: builds finishing
    // after the jump would otherwise fall before the stored cursor and be missed.
    const cursor = state.cursor_time && state.cursor_time < serverNow ? state.cursor_time : serverNow;
    const fields = buildsPageFields({ inlineChanges: settings.inlineChanges });

    // Finished builds, and queued + running builds in one list, read at once (a poll's wall time is
    // its round trips). A build that moves between the lists meanwhile is in neither: if it was active
    // last time it is fetched by id below, and if it is new the next poll finds it (the cursor was
    // taken before these reads).
    const [finished, active] = await Promise.all([
      collect(
        client.builds(
          finishedBuildsLocator({
            startedAfter: new Date(cursor.getTime() - settings.maxBuildDurationMs),
            finishedAfter: new Date(cursor.getTime() - settings.overlapMs),
            offsetMinutes: clock.offsetMinutes,
          }),
          fields,
          { stopOnEmptyPage: false },
        ),
      ),
      collect(client.builds(activeBuildsLocator(), fields)),
    ]);
    const seen = new Set([...finished, ...active].map((b) => b.id));
    const vanished: TcBuild[] = [];
    for (const id of state.active_build_ids.map(Number)) {
      if (seen.has(id)) continue;
      const b = await client.getBuild(id, buildFields({ inlineChanges: settings.inlineChanges }));
      if (b) vanished.push(b);
    }
    report.finished = finished.length;
    report.active = active.length;
    report.vanished = vanished.length;

    // A poll with no backfill to do gives its lease back in its one write to sync_state.
    const backfillPending = state.backfill_since !== null && state.backfill_finished_at === null;
    await completeChanges(client, [...finished, ...vanished, ...active], settings.inlineChanges);
    reading();

    const recording = pollPhaseSeconds.startTimer({ phase: 'record' });
    let wrote = false;
    await deps.db.withTenant(tenantId, async (tx) => {
      // Oldest first, so that a deployment sees the deployments before it.
      await record(tx, [...finished, ...vanished].sort((a, b) => byTime(a) - byTime(b) || a.id - b.id));
      await record(tx, active);
      // Busy now (builds running or queued, or something changed), or busy recently: builds come in
      // bursts, so the short interval holds a while. Builds merely re-read in the overlap don't count.
      const busy = active.length > 0 || report.recorded > 0;
      const recentlyBusy = state.last_activity_at !== null && Date.now() - state.last_activity_at.getTime() < settings.activeHoldMs;
      const interval = busy || recentlyBusy ? settings.activeIntervalMs : settings.idleIntervalMs;
      // A poll that saw nothing new — no build changed, the same builds running and queued, no
      // failure to clear, the same interval — writes nothing: its claim already scheduled the next
      // poll. The cursor then stays behind, which only widens the next finished-builds query over a
      // stretch known to hold nothing new; it is moved on once that would drop a re-read build from
      // the overlap, so an unchanged build is re-read for about `overlapMs`, as with a moving cursor.
      const overlapStart = serverNow.getTime() - settings.overlapMs;
      const quiet =
        !backfillPending &&
        report.recorded === 0 &&
        finished.every((b) => (tryParseTcDate(b.finishDate)?.getTime() ?? 0) > overlapStart) &&
        vanished.length === 0 &&
        sameIds(state.active_build_ids, active.map((b) => b.id)) &&
        state.consecutive_failures === 0 &&
        state.last_error === null &&
        server.state === 'ok' &&
        state.cursor_time !== null &&
        state.cursor_time <= serverNow &&
        state.server_offset_min === clock.offsetMinutes &&
        state.poll_interval_s * 1000 === interval;
      if (quiet) return;
      await fencedUpdate(
        tx,
        serverId,
        lease.token,
        `cursor_time = $3, server_offset_min = $4, active_build_ids = $5, last_success_at = now(),
         last_error = NULL, consecutive_failures = 0, next_poll_at = now() + make_interval(secs => $6), poll_interval_s = $6,
         last_activity_at = CASE WHEN $7::boolean THEN now() ELSE last_activity_at END,
         backfill_until = CASE WHEN backfill_since IS NOT NULL AND backfill_until IS NULL THEN $3 ELSE backfill_until END`,
        [serverNow, clock.offsetMinutes, active.map((b) => b.id), interval / 1000, busy],
        { release: !backfillPending },
      );
      await setServerState(tx, serverId, 'ok');
      wrote = true;
    });
    recording();
    await renewal.stop();
    // Without a write the lease lapses by itself before the next poll is due — unless it outlasts
    // the interval (tests poll with intervals shorter than a lease) or was renewed.
    leaseReleased = wrote ? !backfillPending : lease.seconds <= state.poll_interval_s && !renewal.renewed();

    pollsTotal.inc({ result: 'ok' });
    if (backfillPending) {
      const backfilling = pollPhaseSeconds.startTimer({ phase: 'backfill' });
      report.backfilled = await backfillSlice(deps, settings, tenantId, server, rules, client, clock.offsetMinutes, lease.token, record);
      backfilling();
    }
    log.debug(report, 'poll finished');
    return report;
  } catch (err) {
    if (err instanceof LeaseLostError) {
      log.warn('lease lost during poll; another worker has the server now');
      return report;
    }
    const failures = state.consecutive_failures + 1;
    const authFailed = err instanceof TeamCityAuthError;
    pollsTotal.inc({ result: authFailed ? 'auth_failed' : 'failed' });
    const delay = Math.min(settings.maxFailureBackoffMs, settings.failureBackoffMs * 2 ** Math.min(failures - 1, 16));
    await deps.db.withTenant(tenantId, async (tx) => {
      // Only the claim that still holds the server reports its failure (a newer poll may have succeeded).
      const { rowCount } = await tx.query(
        `UPDATE sync_state SET last_error = $3, consecutive_failures = $4,
           next_poll_at = now() + make_interval(secs => $5) WHERE server_id = $1 AND lease_owner = $2`,
        [serverId, lease.token, (err as Error).message.slice(0, 500), failures, delay / 1000],
      );
      if (rowCount) await setServerState(tx, serverId, authFailed ? 'auth_failed' : failures >= 3 ? 'failing' : 'degraded');
    });
    log.warn({ err, failures, retryInMs: authFailed ? null : delay }, authFailed ? 'TeamCity refused the credentials; polling stops until they change' : 'poll failed');
    return report;
  } finally {
    await renewal.stop();
    // Not after the lease went back with the cursor update: by now this worker may have claimed the
    // server again, and the lease is keyed by worker, so this would release the newer poll's lease.
    if (!leaseReleased) {
      await deps.db
        .withTenant(tenantId, (tx) => tx.query('UPDATE sync_state SET lease_owner = NULL, lease_until = NULL WHERE server_id = $1 AND lease_owner = $2', [serverId, lease.token]))
        .catch((err: unknown) => log.warn({ err }, 'could not release the poll lease'));
    }
  }
}

/** Builds one backfill window aims at (pages of 100): larger windows, fewer partly filled pages. */
const BACKFILL_WINDOW_BUILDS = 2000;

/**
 * History, oldest first, in start-time windows: builds that started after the window's start and
 * were queued before its end (TeamCity allows one startDate condition — the scan cut-off — so the
 * upper bound uses queuedDate ≤ startDate). Each window is recorded with the backfill cursor in one
 * transaction, so a crash resumes at the first unfinished window; builds seen twice are deduplicated.
 */
async function backfillSlice(
  deps: PollerDeps,
  settings: SyncSettings,
  tenantId: string,
  server: ServerRow,
  rules: ServerRules,
  client: TeamCityClient,
  offsetMinutes: number,
  leaseToken: string,
  record: (tx: Tx, builds: TcBuild[]) => Promise<void>,
): Promise<number> {
  const started = Date.now();
  let total = 0;
  let windowMs = settings.backfillWindowMs;
  while (Date.now() - started < settings.backfillBudgetMs) {
    const st = await deps.db.withTenant(tenantId, async (tx) => (await tx.query<SyncStateRow>('SELECT * FROM sync_state WHERE server_id = $1', [server.id])).rows[0]);
    if (!st?.backfill_since || !st.backfill_until) return total;
    const from = st.backfill_cursor ?? st.backfill_since;
    if (from >= st.backfill_until) {
      // Nothing (more) to read — e.g. a backfill asked for from a date after the server's own now.
      if (!st.backfill_finished_at) {
        await deps.db.withTenant(tenantId, (tx) => fencedUpdate(tx, server.id, leaseToken, 'backfill_cursor = backfill_until, backfill_finished_at = now()', []));
      }
      return total;
    }
    const to = new Date(Math.min(from.getTime() + windowMs, st.backfill_until.getTime()));
    // One second of overlap at the lower edge: TeamCity's conditions are strict and second-precise.
    const since = new Date(from.getTime() - 1000);
    const locator = `${backfillBuildsLocator({ since, offsetMinutes })},queuedDate:(date:${formatTcDate(to, offsetMinutes)},condition:before)`;
    const builds = (await completeChanges(client, await collect(client.builds(locator, buildsPageFields({ inlineChanges: settings.inlineChanges }), { stopOnEmptyPage: false })), settings.inlineChanges)).sort(
      (a, b) => (tryParseTcDate(a.startDate)?.getTime() ?? 0) - (tryParseTcDate(b.startDate)?.getTime() ?? 0) || a.id - b.id,
    );
    const done = to >= st.backfill_until;
    await deps.db.withTenant(tenantId, async (tx) => {
      await record(tx, builds);
      await fencedUpdate(
        tx,
        server.id,
        leaseToken,
        `backfill_cursor = $3, backfill_done = backfill_done + $4,
         backfill_started_at = coalesce(backfill_started_at, now()),
         backfill_finished_at = CASE WHEN $5::boolean THEN now() ELSE NULL END,
         next_poll_at = CASE WHEN $5::boolean THEN now() + make_interval(secs => poll_interval_s) ELSE now() END`,
        // Finished: the server's own cadence, as this poll chose it (earlier windows set "due now" so
        // that an interrupted slice resumes at once).
        [to, builds.length, done],
      );
    });
    total += builds.length;
    // Aim each window at ~BACKFILL_WINDOW_BUILDS builds from the density just seen: a window costs
    // ceil(n/page) requests, so few large windows keep TeamCity requests near the floor. Growth is
    // bounded per step (density varies) and a window never shrinks below an hour.
    windowMs = Math.max(3600_000, Math.min(windowMs * 16, (windowMs * BACKFILL_WINDOW_BUILDS) / Math.max(1, builds.length)));
    if (done) return total;
  }
  return total;
}
