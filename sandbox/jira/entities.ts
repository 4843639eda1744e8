// Builds / Deployments API semantics (reference §3.1–3.3): envelope validation (400), per-entity
// validation and rejection (202 with rejected*), unknown issue keys, upsert by updateSequenceNumber,
// deletion by properties.
import type { ValidateFunction } from 'ajv';
import { errorMessages, type EntityValidators } from './schema.ts';
import { buildKey, deploymentKey, type Site } from './site.ts';

export interface ApiResult {
  status: number;
  body?: unknown;
}

export interface EntityLimits {
  /** Entities per request above which the request is refused with 413 (design: Jira takes ≤ 100). */
  maxEntitiesPerRequest: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errorList(messages: string[]): Array<{ message: string }> {
  return messages.map((message) => ({ message }));
}

function validateEnvelope(body: unknown, validate: ValidateFunction, arrayName: string, limits: EntityLimits): ApiResult | { ok: Json } {
  if (!isObject(body)) return { status: 400, body: errorList(['Request body must be a JSON object']) };
  if (!validate(body)) return { status: 400, body: errorList(errorMessages(validate.errors)) };
  const list = body[arrayName] as unknown[];
  if (list.length > limits.maxEntitiesPerRequest) {
    return {
      status: 413,
      body: errorList([`Data is too large. Submit fewer ${arrayName} in each payload (at most ${limits.maxEntitiesPerRequest}; got ${list.length}).`]),
    };
  }
  return { ok: body };
}

function stringProperties(body: Json): Record<string, string> {
  const props = body['properties'];
  const out: Record<string, string> = {};
  if (isObject(props)) for (const [k, v] of Object.entries(props)) out[k] = String(v);
  return out;
}

function providerProduct(body: Json): string | undefined {
  const pm = body['providerMetadata'];
  return isObject(pm) && typeof pm['product'] === 'string' ? pm['product'] : undefined;
}

/** Resolves issue keys/ids against the site: known keys (canonical) and the unknown inputs. */
function resolveIssues(site: Site, values: string[]): { known: string[]; unknown: string[] } {
  const known: string[] = [];
  const unknown: string[] = [];
  for (const v of values) {
    // Keys are matched exactly (Jira keys are upper case); numeric values are issue ids.
    const issue = /^\d+$/.test(v) ? site.issues.find((i) => i.id === v) : site.issues.find((i) => i.key === v);
    if (issue) {
      if (!known.includes(issue.key)) known.push(issue.key);
    } else if (!unknown.includes(v)) unknown.push(v);
  }
  return { known, unknown };
}

const ISSUE_ASSOCIATION_TYPES = ['issueKeys', 'issueIdOrKeys'];

function associationsOf(item: Json): Array<{ associationType: string; values: unknown[] }> {
  const a = item['associations'];
  return Array.isArray(a) ? (a as Array<{ associationType: string; values: unknown[] }>) : [];
}

export function submitBuilds(site: Site, appKey: string, body: unknown, v: EntityValidators, limits: EntityLimits): ApiResult {
  const env = validateEnvelope(body, v.buildsEnvelope, 'builds', limits);
  if (!('ok' in env)) return env;
  const builds = env.ok['builds'] as unknown[];
  const keyErrors: string[] = [];
  builds.forEach((b, i) => {
    if (!isObject(b)) keyErrors.push(`'builds[${i}]' must be an object`);
    else {
      if (typeof b['pipelineId'] !== 'string') keyErrors.push(`'builds[${i}].pipelineId' is required`);
      if (typeof b['buildNumber'] !== 'number' || !Number.isSafeInteger(b['buildNumber'])) keyErrors.push(`'builds[${i}].buildNumber' is required`);
    }
  });
  if (keyErrors.length) return { status: 400, body: errorList(keyErrors) };

  const properties = stringProperties(env.ok);
  const product = providerProduct(env.ok);
  const accepted: Array<{ pipelineId: string; buildNumber: number }> = [];
  const rejected: Array<{ key: { pipelineId: string; buildNumber: number }; errors: Array<{ message: string }> }> = [];
  const unknownIssueKeys: string[] = [];

  for (const raw of builds as Json[]) {
    const key = { pipelineId: raw['pipelineId'] as string, buildNumber: raw['buildNumber'] as number };
    const errors: string[] = [];
    if (!v.buildItem(raw)) errors.push(...errorMessages(v.buildItem.errors));
    if (raw['issueKeys'] === undefined && raw['associations'] === undefined) errors.push("'issueKeys' is required");
    if (errors.length) {
      rejected.push({ key, errors: errorList(errors) });
      continue;
    }
    const requested = [
      ...((raw['issueKeys'] as string[] | undefined) ?? []),
      ...associationsOf(raw).filter((a) => ISSUE_ASSOCIATION_TYPES.includes(a.associationType)).flatMap((a) => a.values as string[]),
    ];
    const { known, unknown } = resolveIssues(site, requested);
    for (const u of unknown) if (!/^\d+$/.test(u) && !unknownIssueKeys.includes(u)) unknownIssueKeys.push(u);
    if (known.length === 0) {
      rejected.push({ key, errors: errorList(['No valid issues found for build']) });
      continue;
    }
    accepted.push(key);
    const id = buildKey(appKey, key.pipelineId, key.buildNumber);
    const usn = raw['updateSequenceNumber'] as number;
    const existing = site.builds.get(id);
    // An update whose updateSequenceNumber is ≤ the stored one is ignored, not reported (§3.1).
    if (existing && existing.updateSequenceNumber >= usn) continue;
    site.builds.set(id, {
      appKey, data: structuredClone(raw), pipelineId: key.pipelineId, buildNumber: key.buildNumber,
      updateSequenceNumber: usn, issueKeys: known, properties, ...(product ? { providerProduct: product } : {}),
    });
  }
  return { status: 202, body: { acceptedBuilds: accepted, rejectedBuilds: rejected, unknownIssueKeys } };
}

export function submitDeployments(site: Site, appKey: string, body: unknown, v: EntityValidators, limits: EntityLimits): ApiResult {
  const env = validateEnvelope(body, v.deploymentsEnvelope, 'deployments', limits);
  if (!('ok' in env)) return env;
  const deployments = env.ok['deployments'] as unknown[];
  const keyErrors: string[] = [];
  deployments.forEach((d, i) => {
    if (!isObject(d)) return keyErrors.push(`'deployments[${i}]' must be an object`);
    if (!isObject(d['pipeline']) || typeof d['pipeline']['id'] !== 'string') keyErrors.push(`'deployments[${i}].pipeline.id' is required`);
    if (!isObject(d['environment']) || typeof d['environment']['id'] !== 'string') keyErrors.push(`'deployments[${i}].environment.id' is required`);
    if (typeof d['deploymentSequenceNumber'] !== 'number' || !Number.isSafeInteger(d['deploymentSequenceNumber'])) keyErrors.push(`'deployments[${i}].deploymentSequenceNumber' is required`);
    return undefined;
  });
  if (keyErrors.length) return { status: 400, body: errorList(keyErrors) };

  const properties = stringProperties(env.ok);
  const product = providerProduct(env.ok);
  type Key = { pipelineId: string; environmentId: string; deploymentSequenceNumber: number };
  const accepted: Key[] = [];
  const rejected: Array<{ key: Key; errors: Array<{ message: string }> }> = [];
  const unknownIssueKeys: string[] = [];
  const unknownAssociations: Array<{ associationType: string; values: string[] }> = [];

  const addUnknownAssociation = (type: string, values: string[]): void => {
    if (values.length === 0) return;
    let entry = unknownAssociations.find((u) => u.associationType === type);
    if (!entry) unknownAssociations.push((entry = { associationType: type, values: [] }));
    for (const x of values) if (!entry.values.includes(x)) entry.values.push(x);
  };

  for (const raw of deployments as Json[]) {
    const key: Key = {
      pipelineId: (raw['pipeline'] as Json)['id'] as string,
      environmentId: (raw['environment'] as Json)['id'] as string,
      deploymentSequenceNumber: raw['deploymentSequenceNumber'] as number,
    };
    const errors: string[] = [];
    if (!v.deploymentItem(raw)) errors.push(...errorMessages(v.deploymentItem.errors));
    const associations = associationsOf(raw);
    if (raw['issueKeys'] === undefined && raw['associations'] === undefined) errors.push("Must specify one of 'issueKeys' or 'associations'");
    if (errors.length === 0 && raw['associations'] !== undefined) {
      const total = associations.reduce((n, a) => n + (Array.isArray(a.values) ? a.values.length : 0), 0);
      if (total > 500) errors.push(`The total number of association values must not exceed 500 (got ${total})`);
      if (!associations.some((a) => ISSUE_ASSOCIATION_TYPES.includes(a.associationType) || a.associationType === 'serviceIdOrKeys')) {
        errors.push("'associations' must contain at least one issue or service association");
      }
    }
    if (errors.length) {
      rejected.push({ key, errors: errorList(errors) });
      continue;
    }
    const legacy = resolveIssues(site, (raw['issueKeys'] as string[] | undefined) ?? []);
    for (const u of legacy.unknown) if (!unknownIssueKeys.includes(u)) unknownIssueKeys.push(u);
    const known = [...legacy.known];
    let services = 0;
    for (const a of associations) {
      if (ISSUE_ASSOCIATION_TYPES.includes(a.associationType)) {
        const r = resolveIssues(site, a.values as string[]);
        for (const k of r.known) if (!known.includes(k)) known.push(k);
        addUnknownAssociation(a.associationType, r.unknown);
      } else if (a.associationType === 'serviceIdOrKeys') services += a.values.length;
    }
    if (known.length === 0 && services === 0) {
      rejected.push({ key, errors: errorList(['No valid issues or services found for deployment']) });
      continue;
    }
    accepted.push(key);
    const id = deploymentKey(appKey, key.pipelineId, key.environmentId, key.deploymentSequenceNumber);
    const usn = raw['updateSequenceNumber'] as number;
    const existing = site.deployments.get(id);
    if (existing && existing.updateSequenceNumber >= usn) continue;
    site.deployments.set(id, {
      appKey, data: structuredClone(raw), ...key, updateSequenceNumber: usn, issueKeys: known, properties,
      ...(product ? { providerProduct: product } : {}),
    });
  }
  return { status: 202, body: { acceptedDeployments: accepted, rejectedDeployments: rejected, unknownIssueKeys, unknownAssociations } };
}

/** `DELETE …/bulkByProperties?k=v&…`: AND of all properties; `_updateSequenceNumber` is no longer supported (ignored). */
export function deleteByProperties(site: Site, appKey: string, kind: 'builds' | 'deployments', query: Map<string, string[]>): ApiResult {
  const wanted = [...query.entries()].filter(([k]) => k !== '_updateSequenceNumber' && k !== 'jwt');
  if (wanted.length === 0) return { status: 400, body: errorList(['At least one property must be provided to delete by']) };
  const store: Map<string, { appKey: string; properties: Record<string, string> }> = kind === 'builds' ? site.builds : site.deployments;
  for (const [id, e] of store) {
    if (e.appKey !== appKey) continue;
    if (wanted.every(([k, values]) => values.every((val) => e.properties[k] === val))) store.delete(id);
  }
  return { status: 202 };
}
