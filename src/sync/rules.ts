// Per-server rules: which configurations and branches are tracked, and how deployment environments
// are named and typed. Validated with zod at the edge (admin API) and again when read.
import { z } from 'zod';
import type { TcBuild } from '../teamcity/types.ts';

const matcher = z
  .object({
    buildTypeId: z.string().min(1).max(255).optional(),
    projectId: z.string().min(1).max(255).optional(),
    /** Glob on the logical branch name: `*` matches any run of characters. */
    branch: z.string().min(1).max(255).optional(),
  })
  .refine((m) => m.buildTypeId || m.projectId || m.branch, 'a rule needs buildTypeId, projectId or branch');

const environmentRule = z.object({
  match: z.object({
    buildTypeId: z.string().min(1).max(255).optional(),
    namePattern: z.string().min(1).max(255).optional(),
    projectPattern: z.string().min(1).max(255).optional(),
  }),
  deployment: z.boolean().optional(),
  /** A successful deployment of a matching configuration is reported as rolled_back. */
  rollback: z.boolean().optional(),
  environment: z
    .object({
      name: z.string().min(1).max(255).optional(),
      type: z.enum(['unmapped', 'development', 'testing', 'staging', 'production']).optional(),
    })
    .optional(),
});

export const serverRulesSchema = z.object({
  /** When non-empty, only matching builds are tracked. */
  include: z.array(matcher).max(200).default([]),
  /** Matching builds are never tracked (wins over include). */
  exclude: z.array(matcher).max(200).default([]),
  environments: z.array(environmentRule).max(200).default([]),
  /** A build parameter naming the environment (when TeamCity exposes it). */
  environmentParameter: z.string().min(1).max(255).optional(),
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
