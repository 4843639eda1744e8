// Request and response models for the seven Jira endpoints the app calls (product.md), from Atlassian's
// OpenAPI (`shared/fixtures/jira/jira-software-builds-deployments.openapi.json`, platform subset
// `jira-platform-v3-used-endpoints.openapi.json`) plus the newer fields of reference/jira-cloud.md §3.6.
// Requests are plain TypeScript types (we build them); the responses we read are zod schemas, so a
// malformed answer from Jira becomes a clear error instead of a crash further down. Response objects are
// loose (unknown extra fields kept), as Jira adds fields over time.
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------------
// Shared

/** `properties` of a bulk submit: ≤ 5 entries, string values ≤ 255, keys without `:` and not starting with `_`. */
export type EntityProperties = Record<string, string>;

export interface ProviderMetadata {
  /** e.g. "TeamCity 2026.1" (no PII). */
  product?: string;
}

/** `{ message, errorTraceId? }`, the per-entity error and the devops APIs' error body items. */
export const errorMessageSchema = z.looseObject({
  message: z.string(),
  errorTraceId: z.string().optional(),
});
export type ErrorMessage = z.infer<typeof errorMessageSchema>;

/** Issue association: `issueKeys` / `issueIdOrKeys` with 1..500 values (builds: ≤ 100). */
export interface IssueAssociation {
  associationType: 'issueKeys' | 'issueIdOrKeys';
  values: string[];
}

export interface ServiceAssociation {
  associationType: 'serviceIdOrKeys';
  values: string[];
}

/** Newer deployments spec (§3.2/§3.6): commits and repositories. */
export interface CommitAssociation {
  associationType: 'commit';
  values: Array<{ commitHash: string; repositoryId: string }>;
}

export interface RepositoryAssociation {
  associationType: 'repository';
  values: Array<{ repositoryId: string }>;
}

export type DeploymentAssociation = IssueAssociation | ServiceAssociation | CommitAssociation | RepositoryAssociation;

// ---------------------------------------------------------------------------------------------------
// Builds — POST /rest/builds/0.1/bulk

export type BuildState = 'pending' | 'in_progress' | 'successful' | 'failed' | 'cancelled' | 'unknown';

export interface BuildTestInfo {
  totalNumber: number;
  numberPassed: number;
  numberFailed: number;
  numberSkipped?: number;
}

export interface BuildReference {
  commit?: { id: string; repositoryUri: string };
  ref?: { name: string; uri: string };
}

export interface BuildData {
  schemaVersion?: '1.0';
  /** ≤ 255; the build configuration. */
  pipelineId: string;
  /** int64; with pipelineId the identity of the build. */
  buildNumber: number;
  /** int64, increasing per build; ≤ stored is ignored by Jira. */
  updateSequenceNumber: number;
  displayName: string;
  description?: string;
  label?: string;
  /** Absolute URL ≤ 2000. */
  url: string;
  state: BuildState;
  /** ISO-8601 date-time. */
  lastUpdated: string;
  /** 1..100 keys. Required by the 2023 spec; §3.6: newer specs use `associations` instead — send one of them. */
  issueKeys?: string[];
  /** §3.6 (newer spec): `issueKeys`/`issueIdOrKeys` associations, ≤ 100 values. */
  associations?: IssueAssociation[];
  testInfo?: BuildTestInfo;
  /** 1..5 references. */
  references?: BuildReference[];
}

export interface SubmitBuildsRequest {
  properties?: EntityProperties;
  builds: BuildData[];
  providerMetadata?: ProviderMetadata;
}

export const buildKeySchema = z.looseObject({
  pipelineId: z.string(),
  buildNumber: z.number(),
});
export type BuildKey = z.infer<typeof buildKeySchema>;

const unknownAssociationSchema = z.looseObject({
  associationType: z.string(),
  values: z.array(z.unknown()),
});
export type UnknownAssociation = z.infer<typeof unknownAssociationSchema>;

/** 202 body of submitBuilds. Arrays Jira leaves out are normalised to []. */
export const submitBuildsResponseSchema = z.looseObject({
  acceptedBuilds: z.array(buildKeySchema).default([]),
  rejectedBuilds: z.array(z.looseObject({ key: buildKeySchema, errors: z.array(errorMessageSchema) })).default([]),
  unknownIssueKeys: z.array(z.string()).default([]),
  /** Newer spec (§3.1). */
  unknownAssociations: z.array(unknownAssociationSchema).default([]),
});
export type SubmitBuildsResponse = z.infer<typeof submitBuildsResponseSchema>;

// ---------------------------------------------------------------------------------------------------
// Deployments — POST /rest/deployments/0.1/bulk

export type DeploymentState = 'unknown' | 'pending' | 'in_progress' | 'cancelled' | 'failed' | 'rolled_back' | 'successful';
export type EnvironmentType = 'unmapped' | 'development' | 'testing' | 'staging' | 'production';

export interface DeploymentData {
  schemaVersion?: '1.0';
  /** int64, unique per pipeline + environment, increasing. */
  deploymentSequenceNumber: number;
  /** int64, increasing per deployment. */
  updateSequenceNumber: number;
  /** Deprecated alternative to `associations` (1..100 keys). */
  issueKeys?: string[];
  /** ≥ 1 issue or service association; ≤ 500 values in total. */
  associations?: DeploymentAssociation[];
  displayName: string;
  url: string;
  /** Required for deployments (≤ 255). */
  description: string;
  lastUpdated: string;
  label?: string;
  /** Seconds (newer spec). */
  duration?: number;
  state: DeploymentState;
  pipeline: { id: string; displayName: string; url: string };
  environment: { id: string; displayName: string; type: EnvironmentType };
  commands?: Array<{ command: string }>;
  /** Newer spec. */
  triggeredBy?: { email?: string };
}

export interface SubmitDeploymentsRequest {
  properties?: EntityProperties;
  deployments: DeploymentData[];
  providerMetadata?: ProviderMetadata;
}

export const deploymentKeySchema = z.looseObject({
  pipelineId: z.string(),
  environmentId: z.string(),
  deploymentSequenceNumber: z.number(),
});
export type DeploymentKey = z.infer<typeof deploymentKeySchema>;

/** 202 body of submitDeployments. Arrays Jira leaves out are normalised to []. */
export const submitDeploymentsResponseSchema = z.looseObject({
  acceptedDeployments: z.array(deploymentKeySchema).default([]),
  rejectedDeployments: z.array(z.looseObject({ key: deploymentKeySchema, errors: z.array(errorMessageSchema) })).default([]),
  unknownIssueKeys: z.array(z.string()).default([]),
  unknownAssociations: z.array(unknownAssociationSchema).default([]),
});
export type SubmitDeploymentsResponse = z.infer<typeof submitDeploymentsResponseSchema>;

// ---------------------------------------------------------------------------------------------------
// Platform — POST /rest/api/3/permissions/check, GET issue, GET project

/** `BulkPermissionsRequestBean`; all fields optional. ≤ 1000 projects and 1000 issues. */
export interface BulkPermissionsRequest {
  accountId?: string;
  globalPermissions?: string[];
  projectPermissions?: Array<{ permissions: string[]; projects?: number[]; issues?: number[] }>;
}

/** `BulkPermissionGrants` (200). */
export const bulkPermissionGrantsSchema = z.looseObject({
  globalPermissions: z.array(z.string()),
  projectPermissions: z.array(
    z.looseObject({
      permission: z.string(),
      projects: z.array(z.number()).default([]),
      issues: z.array(z.number()).default([]),
    }),
  ),
});
export type BulkPermissionGrants = z.infer<typeof bulkPermissionGrantsSchema>;

export const projectRefSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  name: z.string().optional(),
});

/** `IssueBean` (200), the part we read. The app always asks for the `project` field. */
export const issueSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  self: z.string().optional(),
  fields: z.looseObject({ project: projectRefSchema }),
});
export type JiraIssue = z.infer<typeof issueSchema>;

/** `Project` (200), the part we read. */
export const projectSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  name: z.string(),
  self: z.string().optional(),
  projectTypeKey: z.string().optional(),
  simplified: z.boolean().optional(),
});
export type JiraProject = z.infer<typeof projectSchema>;

// ---------------------------------------------------------------------------------------------------
// Error bodies

/** Platform `ErrorCollection`: `{ errorMessages: string[], errors: { field: message } }`. */
export const errorCollectionSchema = z.looseObject({
  errorMessages: z.array(z.string()).optional(),
  errors: z.record(z.string(), z.unknown()).optional(),
});

/** Devops `ErrorMessages`: `[{ message, errorTraceId? }]`. */
export const errorMessagesSchema = z.array(errorMessageSchema);
