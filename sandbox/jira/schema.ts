// Request validation for the Builds / Deployments APIs, compiled with ajv from Atlassian's OpenAPI
// (fixtures/jira/jira-software-builds-deployments.openapi.json), with the 2026 drift of reference §3.6
// applied on top, and the platform request schema (BulkPermissionsRequestBean).
//
// Split like Jira: the request envelope (properties, providerMetadata, array shape) is validated as a
// whole → 400; each build/deployment is validated individually → listed in rejectedBuilds/-Deployments.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

type Json = Record<string, unknown>;

const DEFAULT_FIXTURES = new URL('../../../shared/fixtures/jira/', import.meta.url);

export function fixturesDir(): URL {
  const env = process.env['JIRA_SIM_FIXTURES_DIR'];
  if (env) return new URL(`file://${env.endsWith('/') ? env : env + '/'}`);
  return DEFAULT_FIXTURES;
}

export function loadFixtureJson(name: string, dir: URL = fixturesDir()): unknown {
  return JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as unknown;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function obj(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`OpenAPI: ${what} is not an object`);
  return v as Json;
}

function requestSchema(spec: Json, path: string, method: string): Json {
  const paths = obj(spec['paths'], 'paths');
  const op = obj(obj(paths[path], path)[method], `${method} ${path}`);
  const body = obj(op['requestBody'], 'requestBody');
  const content = obj(body['content'], 'content');
  return obj(obj(content['application/json'], 'application/json')['schema'], 'schema');
}

export function newAjv(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && Math.abs(n) <= 2 ** 31 });
  // The 2023 spec uses the non-standard `format: "URL"` for builds[].url: an absolute URL.
  ajv.addFormat('URL', { type: 'string', validate: (s: string) => URL.canParse(s) });
  return ajv;
}

const ISSUE_ASSOCIATION = {
  type: 'object',
  required: ['associationType', 'values'],
  properties: {
    associationType: { type: 'string', enum: ['issueKeys', 'issueIdOrKeys'] },
    values: {
      type: 'array',
      items: { type: 'string', pattern: '(\\w{1,255}-\\d{1,255}|\\d{1,255})' },
      minItems: 1,
      maxItems: 500,
    },
  },
};

/** 2026 additions to entity associations (reference §3.2, §3.6): `repository`. */
const REPOSITORY_ASSOCIATION = {
  type: 'object',
  required: ['associationType', 'values'],
  properties: {
    associationType: { type: 'string', enum: ['repository'] },
    values: {
      type: 'array',
      items: { type: 'object', required: ['repositoryId'], properties: { repositoryId: { type: 'string', maxLength: 255 } } },
      minItems: 1,
      maxItems: 500,
    },
  },
};

/** Keys of `properties` must not contain ':' nor start with '_' (spec description of `properties`). */
const PROPERTY_NAMES = { pattern: '^[^_:][^:]*$' };

export interface EntityValidators {
  buildsEnvelope: ValidateFunction;
  buildItem: ValidateFunction;
  deploymentsEnvelope: ValidateFunction;
  deploymentItem: ValidateFunction;
  permissionsRequest: ValidateFunction;
}

export function buildValidators(dir: URL = fixturesDir()): EntityValidators {
  const spec = obj(loadFixtureJson('jira-software-builds-deployments.openapi.json', dir), 'spec');
  const ajv = newAjv();

  // --- builds ---
  const builds = clone(requestSchema(spec, '/rest/builds/0.1/bulk', 'post'));
  const bProps = obj(builds['properties'], 'builds.properties');
  const buildsArray = obj(bProps['builds'], 'builds');
  const buildItem = obj(buildsArray['items'], 'builds.items');
  buildsArray['items'] = {};
  obj(bProps['properties'], 'properties')['propertyNames'] = PROPERTY_NAMES;
  // §3.6: builds may carry `associations` (issueKeys / issueIdOrKeys) instead of `issueKeys`.
  const bItemProps = obj(buildItem['properties'], 'BuildData.properties');
  bItemProps['associations'] = {
    type: 'array',
    items: { ...ISSUE_ASSOCIATION, properties: { ...ISSUE_ASSOCIATION.properties, values: { ...ISSUE_ASSOCIATION.properties.values, maxItems: 100 } } },
    minItems: 1,
    maxItems: 3,
  };
  buildItem['required'] = (buildItem['required'] as string[]).filter((r) => r !== 'issueKeys');
  buildItem['type'] = 'object';

  // --- deployments ---
  const deps = clone(requestSchema(spec, '/rest/deployments/0.1/bulk', 'post'));
  deps['type'] = 'object';
  const dProps = obj(deps['properties'], 'deployments.properties');
  const depsArray = obj(dProps['deployments'], 'deployments');
  const depItem = obj(depsArray['items'], 'deployments.items');
  depsArray['items'] = {};
  obj(dProps['properties'], 'properties')['propertyNames'] = PROPERTY_NAMES;
  depItem['type'] = 'object';
  const dItemProps = obj(depItem['properties'], 'DeploymentData.properties');
  const assoc = obj(dItemProps['associations'], 'associations');
  const assocItems = obj(assoc['items'], 'associations.items');
  // The 2023 copy carries both a 2-way `oneOf` and a 3-way `anyOf` (with `commit`); the current API
  // accepts commit and repository associations (§3.2/§3.6), so only the widened `anyOf` is kept.
  delete assocItems['oneOf'];
  (assocItems['anyOf'] as unknown[]).push(REPOSITORY_ASSOCIATION);
  dItemProps['duration'] = { type: 'integer', format: 'int64' };
  dItemProps['triggeredBy'] = { type: 'object', properties: { email: { type: 'string', maxLength: 255 } } };

  // --- platform: permissions/check request ---
  const platform = obj(loadFixtureJson('jira-platform-v3-used-endpoints.openapi.json', dir), 'platform spec');
  ajv.addSchema({ components: platform['components'] }, 'platform.json');

  return {
    buildsEnvelope: ajv.compile(builds),
    buildItem: ajv.compile(buildItem),
    deploymentsEnvelope: ajv.compile(deps),
    deploymentItem: ajv.compile(depItem),
    permissionsRequest: ajv.compile({ $ref: 'platform.json#/components/schemas/BulkPermissionsRequestBean' }),
  };
}

/** Turns ajv errors into Jira-like messages: `'url' is required`, `'state' must be equal to …`. */
export function errorMessages(errors: ErrorObject[] | null | undefined): string[] {
  const out: string[] = [];
  for (const e of errors ?? []) {
    const base = e.instancePath.replace(/^\//, '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
    let msg: string;
    if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      msg = `'${base ? `${base}.${missing}` : missing}' is required`;
    } else if (e.keyword === 'anyOf' || e.keyword === 'oneOf') {
      msg = `'${base}' does not match any allowed shape`;
    } else {
      msg = `'${base || '(body)'}' ${e.message ?? 'is invalid'}`;
    }
    if (!out.includes(msg)) out.push(msg);
  }
  return out;
}
