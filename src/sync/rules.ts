// Per-server rules: which configurations and branches are tracked, and how deployment environments
// are named and typed. Validated with zod at the edge (admin API) and again when read.
import { z } from 'zod';
import type { TcBuild } from '../teamcity/types.ts';

/**
 * Control characters (C0, DEL, C1), bidirectional overrides/isolates and lone surrogates: never part of a
 * legitimate name or pattern. PostgreSQL cannot store NUL or a lone surrogate at all (text and jsonb
 * refuse them: a 500 instead of a 400), and bidi overrides make a name display as something else.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
export function isSafeText(s: string): boolean {
  return !UNSAFE_TEXT.test(s);
}
export const UNSAFE_TEXT_MESSAGE = 'must not contain control characters, bidirectional overrides or unpaired surrogates';
const text = () => z.string().min(1).max(255).refine(isSafeText, UNSAFE_TEXT_MESSAGE);

// Strict objects: an unknown member is a 400 at the API (a typo such as `exlude` must not silently
// replace the rules with empty ones). Stored rules are only ever this schema's own output.
const matcher = z
  .strictObject({
    buildTypeId: text().optional(),
    projectId: text().optional(),
    /** Glob on the logical branch name: `*` matches any run of characters. */
    branch: text().optional(),
  })
  .refine((m) => m.buildTypeId || m.projectId || m.branch, 'a rule needs buildTypeId, projectId or branch');

const environmentRule = z.strictObject({
  match: z.strictObject({
    buildTypeId: text().optional(),
    namePattern: text().optional(),
    projectPattern: text().optional(),
  }),
  deployment: z.boolean().optional(),
  /** A successful deployment of a matching configuration is reported as rolled_back. */
  rollback: z.boolean().optional(),
  environment: z
    .strictObject({
      name: text().optional(),
      type: z.enum(['unmapped', 'development', 'testing', 'staging', 'production']).optional(),
    })
    .optional(),
});

export const serverRulesSchema = z.strictObject({
  /** When non-empty, only matching builds are tracked. */
  include: z.array(matcher).max(200).default([]),
  /** Matching builds are never tracked (wins over include). */
  exclude: z.array(matcher).max(200).default([]),
  environments: z.array(environmentRule).max(200).default([]),
  /** A build parameter naming the environment (when TeamCity exposes it). */
  environmentParameter: text().optional(),
});

export type ServerRules = z.infer<typeof serverRulesSchema>;
export type EnvironmentRuleInput = z.infer<typeof environmentRule>;

export function parseRules(value: unknown): ServerRules {
  return serverRulesSchema.parse(value ?? {});
}

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

function matches(m: z.infer<typeof matcher>, build: TcBuild): boolean {
  const bt = build.buildTypeId ?? build.buildType?.id;
  if (m.buildTypeId && m.buildTypeId !== bt) return false;
  if (m.projectId && m.projectId !== build.buildType?.projectId) return false;
  if (m.branch && !glob(m.branch).test(build.branchName ?? '<default>')) return false;
  return true;
}

export function isTracked(build: TcBuild, rules: ServerRules): boolean {
  if (rules.exclude.some((m) => matches(m, build))) return false;
  return rules.include.length === 0 || rules.include.some((m) => matches(m, build));
}
