// Prometheus metrics (prom-client). Label sets are bounded: endpoints are route templates, never raw
// paths, and no tenant, server or user id is ever a label.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Every call to Jira: endpoint is one of the seven templates in product.md. */
export const jiraRequestSeconds = new Histogram({
  name: 'tcj_jira_request_duration_seconds',
  help: 'Duration of calls to Jira Cloud by endpoint, method and status (status "error" = no response)',
  labelNames: ['endpoint', 'method', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

/** Every call to TeamCity: endpoint is one of the six templates in product.md. */
export const teamcityRequestSeconds = new Histogram({
  name: 'tcj_teamcity_request_duration_seconds',
  help: 'Duration of calls to TeamCity servers by endpoint, method and status (status "error" = no response)',
  labelNames: ['endpoint', 'method', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const jiraRetries = new Counter({
  name: 'tcj_jira_retries_total',
  help: 'Retried calls to Jira by endpoint and reason (429, 503, 5xx, timeout, network)',
  labelNames: ['endpoint', 'reason'] as const,
  registers: [registry],
});

/** Polls of TeamCity servers by outcome: ok, failed, auth_failed. */
export const pollsTotal = new Counter({
  name: 'tcj_polls_total',
  help: 'Polls of TeamCity servers by result (ok, failed, auth_failed)',
  labelNames: ['result'] as const,
  registers: [registry],
});

/** How late a poll started after it was due: the worker pool keeping up (or not). */
export const pollLagSeconds = new Histogram({
  name: 'tcj_poll_lag_seconds',
  help: 'Delay between a server poll becoming due and it starting',
  buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
  registers: [registry],
});

/**
 * Where a poll's time goes: load (its state and decrypted credentials), teamcity (the server clock,
 * the lists, builds fetched by id, changes), record (the transaction that records and queues),
 * backfill (history slices).
 */
export const pollPhaseSeconds = new Histogram({
  name: 'tcj_poll_phase_duration_seconds',
  help: 'Duration of the phases of a poll (load, teamcity, record, backfill)',
  labelNames: ['phase'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

/** Builds recorded from TeamCity (changed since last seen) and queued for Jira, by kind. */
export const buildsQueuedTotal = new Counter({
  name: 'tcj_entities_queued_total',
  help: 'Builds and deployments queued for Jira after a change was seen in TeamCity',
  labelNames: ['kind'] as const,
  registers: [registry],
});

/** Jira's verdict on every delivered entity. */
export const entitiesDeliveredTotal = new Counter({
  name: 'tcj_entities_delivered_total',
  help: "Builds and deployments sent to Jira by kind and Jira's verdict (accepted, rejected)",
  labelNames: ['kind', 'verdict'] as const,
  registers: [registry],
});

/**
 * Outbox depth and the age of its oldest row across all tenants, read at scrape time through the
 * narrowly granted outbox_stats() function (counts only). Registered by the process that has a
 * database (see registerOutboxGauges).
 */
export function registerOutboxGauges(read: () => Promise<{ rows: number; oldestSeconds: number }>): void {
  let last = { rows: 0, oldestSeconds: 0 };
  let pending: Promise<void> | undefined;
  const refresh = () =>
    (pending ??= read()
      .then((v) => void (last = v))
      .catch(() => undefined)
      .finally(() => (pending = undefined)));
  registry.removeSingleMetric('tcj_outbox_rows');
  registry.removeSingleMetric('tcj_outbox_oldest_age_seconds');
  new Gauge({
    name: 'tcj_outbox_rows',
    help: 'Jira updates waiting in the outbox (all tenants)',
    registers: [registry],
    async collect() {
      await refresh();
      this.set(last.rows);
    },
  });
  new Gauge({
    name: 'tcj_outbox_oldest_age_seconds',
    help: 'Age of the oldest Jira update waiting in the outbox (0 when empty)',
    registers: [registry],
    async collect() {
      await refresh();
      this.set(last.oldestSeconds);
    },
  });
}
