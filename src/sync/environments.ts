// Which TeamCity configurations are deployments, and to which Jira environment (design.md §3,
// reference/teamcity-rest.md §6.2, product.md item 6). Pure functions, no I/O.
//
// Rules are an ordered list edited by an admin (with `previewEnvironments` as the preview). A rule
// matches a configuration when every `match` field given holds (an empty `match` matches everything):
// - `buildTypeId`: equal to the configuration id, ignoring case (TeamCity ids are case-insensitive).
// - `namePattern`: the configuration name; `projectPattern`: the project path (`A :: B`, as TeamCity
//   sends it) or the project id. A pattern written `/body/flags` is a JavaScript regular expression,
//   always case-insensitive, unanchored (`/^deploy/`); anything else is a case-insensitive glob over the
//   whole value, where `*` is any run of characters and `?` one character (`Deploy*`, `* :: Payments*`).
//   An invalid regex never matches (and `validateEnvironmentRules` reports it).
// For each aspect (deployment flag, environment name, environment type, rollback) the first matching
// rule that sets it wins, so a specific rule above a catch-all refines it.
//
// Environment name: the rule's name, else the build's value of the configured parameter (e.g.
// `env.ENVIRONMENT`), else the configuration name without a leading "Deploy"/"Deploy to"/"Deployment to"
// or a trailing "Deploy"/"Deployment" ("Deploy to Production" → "Production").
// Environment type: the rule's type, else keywords on the words of the environment name (split on
// punctuation, spaces, camelCase and letter/digit boundaries; whole words only, so "reproduce" is not
// prod and "Liverpool" is not live):
//   production: prod, production, prd, live
//   staging:    staging, stage, stag, stg, preprod, preproduction, pre-prod, pre-production, uat
//   testing:    test, tests, testing, tst, qa, qc, sit, integration, int, acceptance
//   development: dev, development, develop
// Never a silent production: "non-prod"/"not prod" and "prod-like"/"prod mirror|clone|copy|replica" are
// not production; when production and another type both match ("Production-like test env", "prod tests"),
// the other type wins; two non-production types ("dev-test") are ambiguous → unmapped; no keyword →
// unmapped. The resolution says which of these happened (`typeSource`, `note`) for the preview.
//
// Environment id: `<connectionId>/<slug of the name>` (lowercase, runs of anything but letters and digits
// → `-`), so "Prod EU" and "prod-eu" are one environment, renaming a configuration keeps the environment
// as long as its name resolves the same, and ids never exceed 255 characters (`boundedId`).
import { createHash } from 'node:crypto';
import type { TcBuild, TcBuildTypeRef } from '../teamcity/types.ts';
import type { EnvironmentType } from '../jira/models.ts';

export type { EnvironmentType };

export interface EnvironmentRule {
  match: { buildTypeId?: string; namePattern?: string; projectPattern?: string };
  environment?: { name?: string; type?: EnvironmentType };
  /** true: builds of matching configurations are deployments; false: they are not (even if type=deployment). */
  deployment?: boolean;
  /** true: a successful deployment of a matching configuration is reported as `rolled_back`. */
  rollback?: boolean;
}

export interface Environment {
  id: string;
  displayName: string;
  type: EnvironmentType;
}

export interface EnvironmentResolution extends Environment {
  /** Index of the first rule that supplied the name or the type. */
  matchedRule?: number;
  nameSource: 'rule' | 'parameter' | 'configuration';
  typeSource: 'rule' | 'keyword' | 'ambiguous' | 'none';
  /** Human explanation for the preview, e.g. `keyword "prod" → production`. */
  note: string;
}

export const ENVIRONMENT_TYPES: readonly EnvironmentType[] = ['unmapped', 'development', 'testing', 'staging', 'production'];

const MAX_ID = 255;

/** Truncates to `max` UTF-16 code units without splitting a surrogate pair, ending with "…" when cut. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 0) return '';
  let cut = max - 1;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return `${text.slice(0, cut)}…`;
}

/** Collapses whitespace and control characters to single spaces and trims. */
export function cleanText(text: string): string {
  // TeamCity's JSON is not trusted to match its types (a number where a string belongs): coerce, never throw.
  const v: unknown = text;
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
  return s.replace(/[\s\p{Cc}]+/gu, ' ').trim();
}

/**
 * An identifier of at most `max` characters: unchanged when it fits, else a prefix plus `~` and 16 hex
 * digits of its SHA-256, so distinct long ids stay distinct and the same input always gives the same id.
 */
export function boundedId(id: string, max: number = MAX_ID): string {
  if (id.length <= max) return id;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 16);
  let cut = max - 17;
  const code = id.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return `${id.slice(0, cut)}~${hash}`;
}

// ------------------------------------------------------------------------------------------------
// Patterns and rule matching

const REGEX_LITERAL = /^\/(.*)\/([a-z]*)$/s;

/** Compiles a rule pattern (see the header). Throws a SyntaxError for an invalid regular expression. */
export function compilePattern(pattern: string): RegExp {
  const lit = REGEX_LITERAL.exec(pattern);
  if (lit) {
    const flags = new Set((lit[2] ?? '').replace(/[gy]/g, ''));
    flags.add('i');
    return new RegExp(lit[1] ?? '', [...flags].join(''));
  }
  const body = [...pattern]
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 'is');
}

function patternMatches(pattern: string, values: Array<string | undefined>): boolean {
  let re: RegExp;
  try {
    re = compilePattern(pattern);
  } catch {
    return false;
  }
  return values.some((v) => v !== undefined && re.test(v));
}

/** Whether a rule's `match` holds for a configuration. */
export function ruleMatches(rule: EnvironmentRule, buildType: TcBuildTypeRef): boolean {
  const { buildTypeId, namePattern, projectPattern } = rule.match;
  if (buildTypeId !== undefined && buildTypeId.toLowerCase() !== buildType.id.toLowerCase()) return false;
  if (namePattern !== undefined && !patternMatches(namePattern, [buildType.name])) return false;
  if (projectPattern !== undefined && !patternMatches(projectPattern, [buildType.projectName, buildType.projectId])) return false;
  return true;
}

/** Problems with a rule list, as messages for the admin API (empty when valid). */
export function validateEnvironmentRules(rules: readonly EnvironmentRule[]): string[] {
  const errors: string[] = [];
  rules.forEach((rule, i) => {
    for (const field of ['namePattern', 'projectPattern'] as const) {
      const p = rule.match[field];
      if (p === undefined) continue;
      try {
        compilePattern(p);
      } catch (e) {
        errors.push(`rule ${i + 1}: ${field} is not a valid regular expression: ${(e as Error).message}`);
      }
    }
    const type = rule.environment?.type;
    if (type !== undefined && !ENVIRONMENT_TYPES.includes(type)) errors.push(`rule ${i + 1}: unknown environment type "${String(type)}"`);
    const name = rule.environment?.name;
    if (name !== undefined && cleanText(name) === '') errors.push(`rule ${i + 1}: environment name is empty`);
  });
  return errors;
}

function firstMatching<T>(rules: readonly EnvironmentRule[], buildType: TcBuildTypeRef, pick: (r: EnvironmentRule) => T | undefined): { value: T; index: number } | undefined {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i];
    if (rule === undefined) continue;
    const value = pick(rule);
    if (value !== undefined && ruleMatches(rule, buildType)) return { value, index: i };
  }
  return undefined;
}

/** Deployment configuration: the first matching rule with `deployment` set decides, else `type === 'deployment'`. */
export function isDeploymentConfiguration(buildType: TcBuildTypeRef, rules: readonly EnvironmentRule[] = []): boolean {
  return deploymentDecision(buildType, rules).deployment;
}

function deploymentDecision(buildType: TcBuildTypeRef, rules: readonly EnvironmentRule[]): { deployment: boolean; source: 'rule' | 'type'; rule?: number } {
  const hit = firstMatching(rules, buildType, (r) => r.deployment);
  if (hit) return { deployment: hit.value, source: 'rule', rule: hit.index };
  return { deployment: buildType.type === 'deployment', source: 'type' };
}

/** Whether the first matching rule with `rollback` set marks this configuration's successes as rollbacks. */
export function isRollbackConfiguration(buildType: TcBuildTypeRef, rules: readonly EnvironmentRule[] = []): boolean {
  return firstMatching(rules, buildType, (r) => r.rollback)?.value ?? false;
}

// ------------------------------------------------------------------------------------------------
// Names and types

/** "Deploy to Production" → "Production"; "Staging Deployment" → "Staging"; "Deploy" stays "Deploy". */
export function environmentNameFromConfiguration(name: string): string {
  const clean = cleanText(name);
  const stripped = clean
    .replace(/^deploy(?:ment)?(?:\s+to\b)?(?:\s*[:\-–—_>]+\s*|\s+)/i, '')
    .replace(/(?:\s*[:\-–—_]+\s*|\s+)deploy(?:ment)?$/i, '')
    .trim();
  return stripped === '' || /^to$/i.test(stripped) ? clean : stripped;
}

const KEYWORDS: ReadonlyArray<[Exclude<EnvironmentType, 'unmapped'>, readonly string[]]> = [
  ['production', ['prod', 'production', 'prd', 'live']],
  ['staging', ['staging', 'stage', 'stag', 'stg', 'preprod', 'preproduction', 'uat']],
  ['testing', ['test', 'tests', 'testing', 'tst', 'qa', 'qc', 'sit', 'integration', 'int', 'acceptance']],
  ['development', ['dev', 'development', 'develop']],
];
const PROD_WORDS = new Set(['prod', 'production', 'prd']);
const NOT_PROD_AFTER = new Set(['like', 'mirror', 'clone', 'copy', 'replica']);

/** Lowercase words of an environment name, split on punctuation, camelCase and letter/digit boundaries. */
export function environmentTokens(name: string): string[] {
  const words = name
    .normalize('NFKC')
    .replace(/(\p{Ll})(\p{Lu})/gu, '$1 $2')
    .replace(/(\p{L})(\p{N})/gu, '$1 $2')
    .replace(/(\p{N})(\p{L})/gu, '$1 $2')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
  // Compounds: pre-prod → preprod (staging); non-prod / not prod → nonprod; prod-like → prodlike (neither).
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    const next = words[i + 1];
    if ((w === 'pre' || w === 'non' || w === 'not') && next !== undefined && PROD_WORDS.has(next)) {
      out.push(w === 'pre' ? (next === 'production' ? 'preproduction' : 'preprod') : 'nonprod');
      i++;
    } else if (PROD_WORDS.has(w) && next !== undefined && NOT_PROD_AFTER.has(next)) {
      out.push('prodlike');
      i++;
    } else {
      out.push(w);
    }
  }
  return out;
}

/** Environment type from the words of its name (see the header); never guesses production on mixed signals. */
export function inferEnvironmentType(name: string): { type: EnvironmentType; source: 'keyword' | 'ambiguous' | 'none'; note: string } {
  const tokens = environmentTokens(name);
  const found = new Map<EnvironmentType, string>();
  for (const token of tokens) {
    for (const [type, words] of KEYWORDS) if (words.includes(token) && !found.has(type)) found.set(type, token);
  }
  if (found.size > 1 && found.has('production')) {
    const prodWord = found.get('production') ?? '';
    found.delete('production');
    if (found.size === 1) {
      const [[type, word]] = [...found] as [[EnvironmentType, string]];
      return { type, source: 'keyword', note: `keyword "${word}" → ${type} (also "${prodWord}": production is never guessed on mixed signals)` };
    }
  }
  if (found.size === 1) {
    const [[type, word]] = [...found] as [[EnvironmentType, string]];
    return { type, source: 'keyword', note: `keyword "${word}" → ${type}` };
  }
  if (found.size > 1) {
    const list = [...found].map(([t, w]) => `"${w}" → ${t}`).join(', ');
    return { type: 'unmapped', source: 'ambiguous', note: `ambiguous keywords (${list}): unmapped; add a rule to choose` };
  }
  return { type: 'unmapped', source: 'none', note: 'no environment keyword: unmapped; add a rule to choose' };
}

/** Stable environment id: `<connectionId>/<slug>` (≤ 255). */
export function environmentId(connectionId: string, name: string): string {
  let slug = cleanText(name)
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '');
  if (slug === '') slug = `env-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
  return boundedId(`${connectionId}/${slug}`);
}

export interface ResolveEnvironmentOptions {
  /** The TeamCity connection (server) id; part of the environment id. */
  connectionId: string;
  /** Build parameter whose value names the environment, e.g. `env.ENVIRONMENT`. */
  environmentParameter?: string;
  /** The build's parameters; default: the build's `properties`. */
  parameters?: Record<string, string>;
}

/** The Jira environment of a deployment build (see the header for the rules). */
export function resolveEnvironment(
  buildType: TcBuildTypeRef,
  build: Pick<TcBuild, 'properties'> | undefined,
  rules: readonly EnvironmentRule[],
  options: ResolveEnvironmentOptions,
): EnvironmentResolution {
  const nameRule = firstMatching(rules, buildType, (r) => (r.environment?.name !== undefined && cleanText(r.environment.name) !== '' ? cleanText(r.environment.name) : undefined));
  const typeRule = firstMatching(rules, buildType, (r) => r.environment?.type);

  let name: string;
  let nameSource: EnvironmentResolution['nameSource'];
  const param = options.environmentParameter;
  const params = options.parameters ?? paramsOf(build);
  const paramValue = param === undefined ? undefined : cleanText(params[param] ?? '');
  if (nameRule) {
    name = nameRule.value;
    nameSource = 'rule';
  } else if (paramValue) {
    name = paramValue;
    nameSource = 'parameter';
  } else {
    name = environmentNameFromConfiguration(buildType.name ?? buildType.id);
    nameSource = 'configuration';
  }
  name = truncateText(name, 255);

  let type: EnvironmentType;
  let typeSource: EnvironmentResolution['typeSource'];
  let note: string;
  if (typeRule) {
    type = typeRule.value;
    typeSource = 'rule';
    note = `rule ${typeRule.index + 1} → ${type}`;
  } else {
    const inferred = inferEnvironmentType(name);
    type = inferred.type;
    typeSource = inferred.source;
    note = inferred.note;
  }
  const nameNote = nameSource === 'rule' ? `name from rule ${(nameRule?.index ?? 0) + 1}` : nameSource === 'parameter' ? `name from parameter ${param ?? ''}` : 'name from the configuration name';

  const indexes = [nameRule?.index, typeRule?.index].filter((i): i is number => i !== undefined);
  const result: EnvironmentResolution = {
    id: environmentId(options.connectionId, name),
    displayName: name,
    type,
    nameSource,
    typeSource,
    note: `${nameNote}; ${note}`,
  };
  if (indexes.length) result.matchedRule = Math.min(...indexes);
  return result;
}

function paramsOf(build: Pick<TcBuild, 'properties'> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of build?.properties?.property ?? []) if (p.value !== undefined) out[p.name] = p.value;
  return out;
}

export interface EnvironmentPreview {
  buildTypeId: string;
  name?: string;
  projectName?: string;
  deployment: boolean;
  /** What made it a deployment (or not): a rule or the configuration's TeamCity type. */
  deploymentSource: 'rule' | 'type';
  deploymentRule?: number;
  /** For deployment configurations: the environment builds will be reported to (parameter names resolve per build). */
  environment?: EnvironmentResolution;
  rollback?: boolean;
}

/** What the rules do to each configuration, for the admin page's preview. */
export function previewEnvironments(
  buildTypes: readonly TcBuildTypeRef[],
  rules: readonly EnvironmentRule[],
  options: Omit<ResolveEnvironmentOptions, 'parameters'>,
): EnvironmentPreview[] {
  return buildTypes.map((bt) => {
    const decision = deploymentDecision(bt, rules);
    const row: EnvironmentPreview = { buildTypeId: bt.id, deployment: decision.deployment, deploymentSource: decision.source };
    if (bt.name !== undefined) row.name = bt.name;
    if (bt.projectName !== undefined) row.projectName = bt.projectName;
    if (decision.rule !== undefined) row.deploymentRule = decision.rule;
    if (decision.deployment) {
      const env = resolveEnvironment(bt, undefined, rules, { ...options, parameters: {} });
      if (options.environmentParameter !== undefined && env.nameSource === 'configuration') {
        env.note += `; builds that set ${options.environmentParameter} use its value as the name`;
      }
      row.environment = env;
      if (isRollbackConfiguration(bt, rules)) row.rollback = true;
    }
    return row;
  });
}
