// The Jira REST client: one instance per tenant (site), exactly the seven endpoints of product.md and no
// others. Every request is authenticated afresh through `JiraCredentials` (Connect JWT today, Forge/OAuth
// later), goes through the SSRF-guarded dispatcher of net/outbound.ts, is timed into
// `jiraRequestSeconds` by route template, and is logged at debug without tokens or bodies.
// Retries (reference/jira-cloud.md §3.5): 429/503 honour Retry-After / X-RateLimit-Reset up to a cap
// (beyond it: JiraRateLimitedError so the outbox reschedules instead of blocking a worker); other 5xx,
// timeouts and network errors back off exponentially with full jitter; 4xx other than 429 never retry;
// 401/403 notify `onAuthFailure` once and throw JiraAuthError. Bulk submits are chunked to ≤ 100
// entities and split in halves on 413, merging Jira's 202 verdicts.
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import type { JiraCredentials } from './credentials.ts';
import type { Logger } from '../log.ts';
import { jiraRequestSeconds, jiraRetries } from '../metrics.ts';
import { assertOutboundUrl, OutboundBlockedError, outboundAllowHostsOf } from '../net/outbound.ts';
import {
  bulkPermissionGrantsSchema,
  errorCollectionSchema,
  errorMessagesSchema,
  issueSchema,
  projectSchema,
  submitBuildsResponseSchema,
  submitDeploymentsResponseSchema,
  type BuildData,
  type BulkPermissionGrants,
  type BulkPermissionsRequest,
  type DeploymentData,
  type EntityProperties,
  type JiraIssue,
  type JiraProject,
  type SubmitBuildsRequest,
  type SubmitBuildsResponse,
  type SubmitDeploymentsRequest,
  type SubmitDeploymentsResponse,
  type UnknownAssociation,
} from './models.ts';

/** The seven endpoints (route templates, also the `endpoint` metric label). */
export const JIRA_ENDPOINTS = {
  checkPermissions: '/rest/api/3/permissions/check',
  getIssue: '/rest/api/3/issue/{issueIdOrKey}',
  getProject: '/rest/api/3/project/{projectIdOrKey}',
  submitBuilds: '/rest/builds/0.1/bulk',
  deleteBuildsByProperties: '/rest/builds/0.1/bulkByProperties',
  submitDeployments: '/rest/deployments/0.1/bulk',
  deleteDeploymentsByProperties: '/rest/deployments/0.1/bulkByProperties',
} as const;
export type JiraEndpoint = (typeof JIRA_ENDPOINTS)[keyof typeof JIRA_ENDPOINTS];

/** Jira takes at most 100 builds or deployments per request (design.md §1). */
export const MAX_ENTITIES_PER_REQUEST = 100;

// ---------------------------------------------------------------------------------------------------
// Errors

export class JiraError extends Error {
  override name = 'JiraError';
  constructor(
    message: string,
    readonly endpoint: JiraEndpoint,
    readonly method: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Jira answered with an error status. `jiraMessage` is parsed from `{errorMessages, errors}` or `[{message}]`. */
export class JiraHttpError extends JiraError {
  override name = 'JiraHttpError';
  constructor(
    endpoint: JiraEndpoint,
    method: string,
    readonly status: number,
    readonly jiraMessage: string,
    /** Worth trying again later (5xx after the retries were used up). */
    readonly retryable = false,
  ) {
    super(`Jira ${method} ${endpoint} failed with ${status}${jiraMessage ? `: ${jiraMessage}` : ''}`, endpoint, method);
  }
}

/** 413: the request body was too large for Jira. The bulk methods handle it by splitting. */
export class JiraPayloadTooLargeError extends JiraHttpError {
  override name = 'JiraPayloadTooLargeError';
  constructor(endpoint: JiraEndpoint, method: string, jiraMessage: string) {
    super(endpoint, method, 413, jiraMessage);
  }
}

/** 401/403: the credentials are not (or no longer) accepted. Not retried; `onAuthFailure` was called. */
export class JiraAuthError extends JiraHttpError {
  override name = 'JiraAuthError';
  constructor(endpoint: JiraEndpoint, method: string, status: 401 | 403, jiraMessage: string) {
    super(endpoint, method, status, jiraMessage);
  }
}

/**
 * Jira asked us to come back later (429, or 503 with Retry-After) for longer than the client waits in
 * place, or the attempts ran out while it kept asking. The caller reschedules after `retryAfterMs`.
 */
export class JiraRateLimitedError extends JiraHttpError {
  override name = 'JiraRateLimitedError';
  constructor(
    endpoint: JiraEndpoint,
    method: string,
    status: number,
    readonly retryAfterMs: number,
    jiraMessage: string,
  ) {
    super(endpoint, method, status, jiraMessage, true);
    this.message = `Jira ${method} ${endpoint} asked to retry after ${Math.ceil(retryAfterMs / 1000)} s (${status})${jiraMessage ? `: ${jiraMessage}` : ''}`;
  }
}

/** No response: timeout or network failure, after the retries were used up. */
export class JiraNetworkError extends JiraError {
  override name = 'JiraNetworkError';
  readonly retryable = true;
  constructor(endpoint: JiraEndpoint, method: string, readonly timedOut: boolean, cause: unknown) {
    const detail = timedOut ? 'timed out' : `network error (${cause instanceof Error ? cause.message : String(cause)})`;
    super(`Jira ${method} ${endpoint} ${detail}`, endpoint, method, { cause });
  }
}

/** A success status with a body that is not what the API documents. */
export class JiraResponseError extends JiraError {
  override name = 'JiraResponseError';
  constructor(endpoint: JiraEndpoint, method: string, readonly status: number, readonly problems: string[]) {
    super(`Jira ${method} ${endpoint} answered ${status} with an unexpected body: ${problems.join('; ')}`, endpoint, method);
  }
}

/** Jira's error text from `{errorMessages, errors}` (platform) or `[{message}]` (devops) bodies, else the raw text (capped). */
export function jiraErrorMessage(text: string): string {
  const raw = text.trim();
  if (raw === '') return '';
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return raw.length > 300 ? `${raw.slice(0, 300)}…` : raw;
  }
  const list = errorMessagesSchema.safeParse(json);
  if (list.success) return list.data.map((m) => m.message).join('; ');
  const collection = errorCollectionSchema.safeParse(json);
  if (collection.success && (collection.data.errorMessages || collection.data.errors)) {
    const parts = [
      ...(collection.data.errorMessages ?? []),
      ...Object.entries(collection.data.errors ?? {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`),
    ];
    return parts.join('; ');
  }
  if (json !== null && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  return raw.length > 300 ? `${raw.slice(0, 300)}…` : raw;
}

// ---------------------------------------------------------------------------------------------------
// Client

export interface JiraAuthFailureDetail {
  endpoint: JiraEndpoint;
  method: string;
  message: string;
}

export interface JiraClientOptions {
  /** The site's base URL from the installation (may have a context path). */
  baseUrl: string;
  credentials: JiraCredentials;
  /** From `createOutboundDispatcher`; its allow-list also decides whether an http baseUrl is acceptable. */
  dispatcher: Dispatcher;
  log: Logger;
  /** Called once per call that Jira answered 401/403 (e.g. to mark the tenant's health). */
  onAuthFailure?: (status: 401 | 403, detail: JiraAuthFailureDetail) => Promise<void> | void;
  /** Per attempt, headers and body included; default 30 s. */
  timeoutMs?: number;
  /** Attempts per request (first try included); default 5. */
  maxAttempts?: number;
  /** Longest Retry-After waited in place; longer → JiraRateLimitedError. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Exponential backoff: first cap and overall cap; defaults 500 ms and 30 s. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** ≤ 100 (the API limit); default 100. */
  maxEntitiesPerRequest?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

type Method = 'GET' | 'POST' | 'DELETE';

interface Call {
  method: Method;
  endpoint: JiraEndpoint;
  pathAndQuery: string;
  body?: unknown;
}

/** RFC 3986 percent-encoding (only A-Z a-z 0-9 - . _ ~ left as they are). */
function encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function pathParam(name: string, value: string | number): string {
  const s = String(value);
  if (s.trim() === '') throw new TypeError(`${name} must not be empty`);
  return encode(s);
}

/** Wait Jira asked for: `Retry-After` (seconds or HTTP date), else `X-RateLimit-Reset` (ISO timestamp). */
export function requestedWaitMs(headers: Record<string, string | string[] | undefined>, now: number): number | undefined {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.trim();
  const retryAfter = first(headers['retry-after']);
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.ceil(Number(retryAfter) * 1000);
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = first(headers['x-ratelimit-reset']);
  if (reset) {
    const at = Date.parse(reset);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  return undefined;
}

function zodProblems(error: z.ZodError): string[] {
  return error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`);
}

function dedupe<T>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    const k = JSON.stringify(i);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function mergeAssociations(a: UnknownAssociation[], b: UnknownAssociation[]): UnknownAssociation[] {
  const byType = new Map<string, UnknownAssociation>();
  for (const u of [...a, ...b]) {
    const prev = byType.get(u.associationType);
    byType.set(u.associationType, prev ? { ...prev, values: dedupe([...prev.values, ...u.values]) } : { ...u, values: dedupe(u.values) });
  }
  return [...byType.values()];
}

function mergeBuilds(a: SubmitBuildsResponse, b: SubmitBuildsResponse): SubmitBuildsResponse {
  return {
    acceptedBuilds: [...a.acceptedBuilds, ...b.acceptedBuilds],
    rejectedBuilds: [...a.rejectedBuilds, ...b.rejectedBuilds],
    unknownIssueKeys: dedupe([...a.unknownIssueKeys, ...b.unknownIssueKeys]),
    unknownAssociations: mergeAssociations(a.unknownAssociations, b.unknownAssociations),
  };
}

function mergeDeployments(a: SubmitDeploymentsResponse, b: SubmitDeploymentsResponse): SubmitDeploymentsResponse {
  return {
    acceptedDeployments: [...a.acceptedDeployments, ...b.acceptedDeployments],
    rejectedDeployments: [...a.rejectedDeployments, ...b.rejectedDeployments],
    unknownIssueKeys: dedupe([...a.unknownIssueKeys, ...b.unknownIssueKeys]),
    unknownAssociations: mergeAssociations(a.unknownAssociations, b.unknownAssociations),
  };
}

const emptyBuilds = (): SubmitBuildsResponse => ({ acceptedBuilds: [], rejectedBuilds: [], unknownIssueKeys: [], unknownAssociations: [] });
const emptyDeployments = (): SubmitDeploymentsResponse => ({ acceptedDeployments: [], rejectedDeployments: [], unknownIssueKeys: [], unknownAssociations: [] });

function tooLargeMessage(kind: string, err: JiraPayloadTooLargeError): string {
  return `Jira refused this ${kind} as too large (413) even when sent on its own${err.jiraMessage ? `: ${err.jiraMessage}` : ''}`;
}

export class JiraClient {
  readonly baseUrl: string;
  private readonly credentials: JiraCredentials;
  private readonly dispatcher: Dispatcher;
  private readonly log: Logger;
  private readonly onAuthFailure: JiraClientOptions['onAuthFailure'];
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxRetryAfterMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxEntities: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly host: string;

  constructor(opts: JiraClientOptions) {
    const url = assertOutboundUrl(opts.baseUrl, { allowHosts: outboundAllowHostsOf(opts.dispatcher) ?? [] });
    if (url.search !== '' || url.hash !== '') throw new TypeError('Jira baseUrl must not have a query or fragment');
    this.baseUrl = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    this.host = url.host;
    this.credentials = opts.credentials;
    this.dispatcher = opts.dispatcher;
    this.log = opts.log;
    this.onAuthFailure = opts.onAuthFailure;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 60_000;
    this.backoffBaseMs = opts.backoffBaseMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    this.maxEntities = Math.max(1, Math.min(MAX_ENTITIES_PER_REQUEST, opts.maxEntitiesPerRequest ?? MAX_ENTITIES_PER_REQUEST));
    this.sleep = opts.sleep ?? ((ms) => delay(ms));
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
  }

  // ---- the seven endpoints ----

  /** POST /rest/api/3/permissions/check */
  async checkPermissions(body: BulkPermissionsRequest): Promise<BulkPermissionGrants> {
    const call: Call = { method: 'POST', endpoint: JIRA_ENDPOINTS.checkPermissions, pathAndQuery: '/rest/api/3/permissions/check', body };
    return this.parse(call, await this.send(call), bulkPermissionGrantsSchema);
  }

  /** GET /rest/api/3/issue/{issueIdOrKey}?fields=… — `project` is always among the fields asked for. */
  async getIssue(issueIdOrKey: string | number, fields: readonly string[] = []): Promise<JiraIssue> {
    const list = [...new Set(['project', ...fields.map((f) => f.trim()).filter((f) => f !== '')])];
    const call: Call = {
      method: 'GET',
      endpoint: JIRA_ENDPOINTS.getIssue,
      pathAndQuery: `/rest/api/3/issue/${pathParam('issueIdOrKey', issueIdOrKey)}?fields=${list.map(encode).join(',')}`,
    };
    return this.parse(call, await this.send(call), issueSchema);
  }

  /** GET /rest/api/3/project/{projectIdOrKey} */
  async getProject(projectIdOrKey: string | number): Promise<JiraProject> {
    const call: Call = { method: 'GET', endpoint: JIRA_ENDPOINTS.getProject, pathAndQuery: `/rest/api/3/project/${pathParam('projectIdOrKey', projectIdOrKey)}` };
    return this.parse(call, await this.send(call), projectSchema);
  }

  /** POST /rest/builds/0.1/bulk, ≤ 100 builds per request, split on 413; Jira's verdicts merged. */
  async submitBuilds(req: SubmitBuildsRequest): Promise<SubmitBuildsResponse> {
    const post = async (builds: BuildData[]): Promise<SubmitBuildsResponse> => {
      const call: Call = { method: 'POST', endpoint: JIRA_ENDPOINTS.submitBuilds, pathAndQuery: '/rest/builds/0.1/bulk', body: { ...req, builds } };
      return this.parse(call, await this.send(call), submitBuildsResponseSchema);
    };
    const tooLarge = (b: BuildData, err: JiraPayloadTooLargeError): SubmitBuildsResponse => ({
      ...emptyBuilds(),
      rejectedBuilds: [{ key: { pipelineId: b.pipelineId, buildNumber: b.buildNumber }, errors: [{ message: tooLargeMessage('build', err) }] }],
    });
    return this.submitInBatches(req.builds, post, mergeBuilds, emptyBuilds, tooLarge);
  }

  /** POST /rest/deployments/0.1/bulk, ≤ 100 deployments per request, split on 413; Jira's verdicts merged. */
  async submitDeployments(req: SubmitDeploymentsRequest): Promise<SubmitDeploymentsResponse> {
    const post = async (deployments: DeploymentData[]): Promise<SubmitDeploymentsResponse> => {
      const call: Call = { method: 'POST', endpoint: JIRA_ENDPOINTS.submitDeployments, pathAndQuery: '/rest/deployments/0.1/bulk', body: { ...req, deployments } };
      return this.parse(call, await this.send(call), submitDeploymentsResponseSchema);
    };
    const tooLarge = (d: DeploymentData, err: JiraPayloadTooLargeError): SubmitDeploymentsResponse => ({
      ...emptyDeployments(),
      rejectedDeployments: [{
        key: { pipelineId: d.pipeline.id, environmentId: d.environment.id, deploymentSequenceNumber: d.deploymentSequenceNumber },
        errors: [{ message: tooLargeMessage('deployment', err) }],
      }],
    });
    return this.submitInBatches(req.deployments, post, mergeDeployments, emptyDeployments, tooLarge);
  }

  /** DELETE /rest/builds/0.1/bulkByProperties?k=v&… (AND of all properties; accepted = 202). */
  async deleteBuildsByProperties(props: EntityProperties): Promise<void> {
    await this.send({ method: 'DELETE', endpoint: JIRA_ENDPOINTS.deleteBuildsByProperties, pathAndQuery: `/rest/builds/0.1/bulkByProperties?${propertyQuery(props)}` });
  }

  /** DELETE /rest/deployments/0.1/bulkByProperties?k=v&… */
  async deleteDeploymentsByProperties(props: EntityProperties): Promise<void> {
    await this.send({ method: 'DELETE', endpoint: JIRA_ENDPOINTS.deleteDeploymentsByProperties, pathAndQuery: `/rest/deployments/0.1/bulkByProperties?${propertyQuery(props)}` });
  }

  // ---- bulk helpers ----

  private async submitInBatches<E, R>(
    entities: readonly E[],
    post: (chunk: E[]) => Promise<R>,
    merge: (a: R, b: R) => R,
    empty: () => R,
    tooLarge: (entity: E, err: JiraPayloadTooLargeError) => R,
  ): Promise<R> {
    const sendSplitting = async (chunk: E[]): Promise<R> => {
      try {
        return await post(chunk);
      } catch (err) {
        if (!(err instanceof JiraPayloadTooLargeError)) throw err;
        if (chunk.length === 1) {
          this.log.warn({ jira: { endpoint: err.endpoint, site: this.host } }, 'Jira refused a single entity as too large (413); reported as rejected');
          return tooLarge(chunk[0]!, err);
        }
        const mid = Math.ceil(chunk.length / 2);
        this.log.debug({ jira: { endpoint: err.endpoint, entities: chunk.length } }, 'Jira answered 413; splitting the batch in halves');
        const first = await sendSplitting(chunk.slice(0, mid));
        return merge(first, await sendSplitting(chunk.slice(mid)));
      }
    };
    let result = empty();
    for (let i = 0; i < entities.length; i += this.maxEntities) {
      result = merge(result, await sendSplitting(entities.slice(i, i + this.maxEntities)));
    }
    return result;
  }

  // ---- transport ----

  private parse<S extends z.ZodType>(call: Call, res: { status: number; text: string }, schema: S): z.output<S> {
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      throw new JiraResponseError(call.endpoint, call.method, res.status, [res.text.trim() === '' ? 'empty body' : 'body is not JSON']);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new JiraResponseError(call.endpoint, call.method, res.status, zodProblems(parsed.error));
    return parsed.data;
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempt - 1));
    return Math.floor(this.random() * cap);
  }

  private async retryLater(call: Call, reason: string, waitMs: number, attempt: number): Promise<void> {
    jiraRetries.inc({ endpoint: call.endpoint, reason });
    this.log.debug({ jira: { method: call.method, endpoint: call.endpoint, reason, waitMs, attempt } }, 'retrying Jira request');
    await this.sleep(waitMs);
  }

  private async notifyAuthFailure(status: 401 | 403, detail: JiraAuthFailureDetail): Promise<void> {
    if (!this.onAuthFailure) return;
    try {
      await this.onAuthFailure(status, detail);
    } catch (err) {
      this.log.warn({ err, jira: { endpoint: detail.endpoint } }, 'onAuthFailure callback failed');
    }
  }

  /** One logical call with its retries; resolves with a 2xx status and the body text. */
  private async send(call: Call): Promise<{ status: number; text: string }> {
    const url = `${this.baseUrl}${call.pathAndQuery}`;
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= this.maxAttempts;
      const headers: Record<string, string> = {
        accept: 'application/json',
        'user-agent': 'teamcity-integration-for-jira',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(await this.credentials.headersFor(call.method, call.pathAndQuery)),
      };
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.timeoutMs);
      const started = performance.now();
      let status: number;
      let text: string;
      let resHeaders: Record<string, string | string[] | undefined>;
      try {
        const res = await request(url, {
          method: call.method,
          headers,
          ...(body !== undefined ? { body } : {}),
          dispatcher: this.dispatcher,
          signal: controller.signal,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        status = res.statusCode;
        resHeaders = res.headers;
        text = await res.body.text();
      } catch (err) {
        const seconds = (performance.now() - started) / 1000;
        jiraRequestSeconds.observe({ endpoint: call.endpoint, method: call.method, status: 'error' }, seconds);
        this.log.debug({ jira: { method: call.method, endpoint: call.endpoint, status: 'error', durationMs: Math.round(seconds * 1000), attempt, timedOut } }, 'jira request');
        if (err instanceof OutboundBlockedError) throw err;
        const isTimeout = timedOut || (err instanceof Error && /Timeout/i.test(err.name));
        if (last) throw new JiraNetworkError(call.endpoint, call.method, isTimeout, err);
        await this.retryLater(call, isTimeout ? 'timeout' : 'network', this.backoff(attempt), attempt);
        continue;
      } finally {
        clearTimeout(timer);
      }
      const seconds = (performance.now() - started) / 1000;
      jiraRequestSeconds.observe({ endpoint: call.endpoint, method: call.method, status: String(status) }, seconds);
      this.log.debug({ jira: { method: call.method, endpoint: call.endpoint, status, durationMs: Math.round(seconds * 1000), attempt } }, 'jira request');

      if (status >= 200 && status < 300) return { status, text };
      const message = jiraErrorMessage(text);
      if (status === 401 || status === 403) {
        await this.notifyAuthFailure(status, { endpoint: call.endpoint, method: call.method, message });
        throw new JiraAuthError(call.endpoint, call.method, status, message);
      }
      if (status === 413) throw new JiraPayloadTooLargeError(call.endpoint, call.method, message);
      if (status === 429 || status === 503) {
        const asked = requestedWaitMs(resHeaders, this.now());
        if (asked !== undefined && asked > this.maxRetryAfterMs) {
          throw new JiraRateLimitedError(call.endpoint, call.method, status, asked, message);
        }
        const wait = asked ?? this.backoff(attempt);
        if (last) {
          if (status === 429 || asked !== undefined) throw new JiraRateLimitedError(call.endpoint, call.method, status, wait, message);
          throw new JiraHttpError(call.endpoint, call.method, status, message, true);
        }
        await this.retryLater(call, String(status), wait, attempt);
        continue;
      }
      if (status >= 500) {
        if (last) throw new JiraHttpError(call.endpoint, call.method, status, message, true);
        await this.retryLater(call, '5xx', this.backoff(attempt), attempt);
        continue;
      }
      throw new JiraHttpError(call.endpoint, call.method, status, message);
    }
  }
}

/** `k=v&…` for bulkByProperties: at least one property; keys as Jira stores them (no `:`, not starting with `_`). */
function propertyQuery(props: EntityProperties): string {
  const entries = Object.entries(props);
  if (entries.length === 0) throw new TypeError('deleting by properties needs at least one property');
  for (const [k, v] of entries) {
    if (k === '' || k.startsWith('_') || k.includes(':')) throw new TypeError(`invalid property name ${JSON.stringify(k)} (must be non-empty, no ":", not starting with "_")`);
    if (typeof v !== 'string') throw new TypeError(`property ${JSON.stringify(k)} must be a string`);
  }
  return entries.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
}
