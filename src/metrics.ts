// Prometheus metrics (prom-client). Label sets are bounded: endpoints are route templates, never raw
// paths, and no tenant, server or user id is ever a label.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
