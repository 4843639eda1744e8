import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TcBuildTypeRef } from '../teamcity/types.ts';
import {
  boundedId,
  compilePattern,
  environmentId,
  environmentNameFromConfiguration,
  environmentTokens,
  inferEnvironmentType,
  isDeploymentConfiguration,
  previewEnvironments,
  resolveEnvironment,
  ruleMatches,
  truncateText,
  validateEnvironmentRules,
  type EnvironmentRule,
} from './environments.ts';

const fixture = (path: string): any => JSON.parse(readFileSync(new URL(`../../../shared/fixtures/teamcity/${path}`, import.meta.url), 'utf8'));

// [environment name, expected type]
const TYPES: Array<[string, string]> = [
  ['Production', 'production'],
  ['prod', 'production'],
  ['PRD-EU', 'production'],
  ['Live', 'production'],
  ['prod2', 'production'],
  ['ProdEU', 'production'],
  ['Staging', 'staging'],
  ['stage', 'staging'],
  ['stg-1', 'staging'],
  ['Pre-Production', 'staging'],
  ['preprod', 'staging'],
  ['Pre Prod', 'staging'],
  ['UAT', 'staging'],
  ['uat2', 'staging'],
  ['Test', 'testing'],
  ['QA', 'testing'],
  ['qa-1', 'testing'],
  ['SIT', 'testing'],
  ['Integration', 'testing'],
  ['Dev', 'development'],
  ['development', 'development'],
  ['develop', 'development'],
  // never a silent production
  ['Production-like test env', 'testing'],
  ['Prod tests', 'testing'],
  ['Production-like', 'unmapped'],
  ['prod mirror', 'unmapped'],
  ['non-prod', 'unmapped'],
  ['Not Production', 'unmapped'],
  ['reproduce', 'unmapped'],
  ['Products', 'unmapped'],
  ['Liverpool', 'unmapped'],
  ['dev-test', 'unmapped'],
  ['Sandbox', 'unmapped'],
  ['EU-West-1', 'unmapped'],
  ['Продакшн', 'unmapped'],
];

test('inferEnvironmentType table', () => {
  const wrong = TYPES.filter(([name, type]) => inferEnvironmentType(name).type !== type).map(([name, type]) => `${name}: got ${inferEnvironmentType(name).type}, want ${type}`);
  assert.deepEqual(wrong, []);
  assert.equal(inferEnvironmentType('dev-test').source, 'ambiguous');
  assert.equal(inferEnvironmentType('Sandbox').source, 'none');
  assert.match(inferEnvironmentType('Prod tests').note, /never guessed/);
});

test('environmentTokens splits camelCase, digits and punctuation, and joins pre-/non- prod', () => {
  assert.deepEqual(environmentTokens('preProdEU2'), ['preprod', 'eu', '2']);
  assert.deepEqual(environmentTokens('Deploy_to: Non-Prod (eu)'), ['deploy', 'to', 'nonprod', 'eu']);
  assert.deepEqual(environmentTokens('prod-like'), ['prodlike']);
});

test('environmentNameFromConfiguration strips Deploy prefixes and suffixes', () => {
  const cases: Array<[string, string]> = [
    ['Deploy to Production', 'Production'],
    ['deploy to  QA', 'QA'],
    ['Deploy: Staging', 'Staging'],
    ['Deploy - UAT', 'UAT'],
    ['Deployment to Test', 'Test'],
    ['Deploy Prod', 'Prod'],
    ['Staging Deployment', 'Staging'],
    ['Production deploy', 'Production'],
    ['Deploy', 'Deploy'],
    ['Deploy to', 'Deploy to'],
    ['Deployer service', 'Deployer service'],
    ['  Deploy   to   EU\tprod ', 'EU prod'],
  ];
  for (const [name, expected] of cases) assert.equal(environmentNameFromConfiguration(name), expected, name);
});

test('compilePattern: case-insensitive globs over the whole value, /regex/ unanchored', () => {
  assert.ok(compilePattern('Deploy*').test('deploy to prod'));
  assert.ok(!compilePattern('Deploy*').test('Pre-deploy'));
  assert.ok(compilePattern('Deploy ?').test('deploy x'));
  assert.ok(compilePattern('a.b (c)').test('A.B (C)'));
  assert.ok(!compilePattern('a.b').test('axb'));
  assert.ok(compilePattern('/prod$/').test('Deploy PROD'));
  assert.ok(compilePattern('/^deploy/g').test('Deploy'));
  assert.throws(() => compilePattern('/(/'), SyntaxError);
});

const deployProd: TcBuildTypeRef = { id: 'Shop_DeployProd', name: 'Deploy to Production', projectName: 'Shop :: Backend', projectId: 'Shop_Backend', type: 'deployment' };
const build: TcBuildTypeRef = { id: 'Shop_Build', name: 'Build', projectName: 'Shop :: Backend', projectId: 'Shop_Backend' };
const deployQa: TcBuildTypeRef = { id: 'Shop_DeployQa', name: 'Deploy QA', projectName: 'Shop :: Backend', projectId: 'Shop_Backend' };

test('ruleMatches: all given fields must hold; empty match matches everything; invalid regex never matches', () => {
  assert.ok(ruleMatches({ match: {} }, build));
  assert.ok(ruleMatches({ match: { buildTypeId: 'shop_build' } }, build));
  assert.ok(!ruleMatches({ match: { buildTypeId: 'Shop_Build', namePattern: 'Deploy*' } }, build));
  assert.ok(ruleMatches({ match: { projectPattern: 'Shop :: *' } }, build));
  assert.ok(ruleMatches({ match: { projectPattern: 'shop_backend' } }, build));
  assert.ok(!ruleMatches({ match: { namePattern: '/(/' } }, build));
  assert.ok(!ruleMatches({ match: { namePattern: 'Build' } }, { id: 'X' }));
});

test('isDeploymentConfiguration: TeamCity type by default; rules include and exclude', () => {
  assert.equal(isDeploymentConfiguration(deployProd), true);
  assert.equal(isDeploymentConfiguration(deployQa), false);
  assert.equal(isDeploymentConfiguration(deployQa, [{ match: { namePattern: 'Deploy*' }, deployment: true }]), true);
  assert.equal(isDeploymentConfiguration(deployProd, [{ match: { buildTypeId: 'Shop_DeployProd' }, deployment: false }]), false);
  // A rule without `deployment` does not decide; the next one does.
  const rules: EnvironmentRule[] = [{ match: { namePattern: 'Deploy*' }, environment: { type: 'testing' } }, { match: {}, deployment: false }];
  assert.equal(isDeploymentConfiguration(deployProd, rules), false);
  // The real fixture configuration has no type attribute: regular.
  assert.equal(isDeploymentConfiguration(fixture('buildTypes/buildType-regular-full-icelander.json')), false);
});

test('resolveEnvironment: name from rule, else parameter, else configuration; type from rule, else keywords', () => {
  const fromName = resolveEnvironment(deployProd, undefined, [], { connectionId: 'c1' });
  assert.deepEqual(fromName, {
    id: 'c1/production',
    displayName: 'Production',
    type: 'production',
    nameSource: 'configuration',
    typeSource: 'keyword',
    note: 'name from the configuration name; keyword "production" → production',
  });

  const withParam = resolveEnvironment(deployProd, { properties: { property: [{ name: 'env.ENVIRONMENT', value: ' staging-eu ' }] } }, [], {
    connectionId: 'c1',
    environmentParameter: 'env.ENVIRONMENT',
  });
  assert.equal(withParam.displayName, 'staging-eu');
  assert.equal(withParam.type, 'staging');
  assert.equal(withParam.nameSource, 'parameter');
  assert.equal(withParam.id, 'c1/staging-eu');

  // Explicit parameters override the build's properties; an empty value falls back to the configuration name.
  const emptyParam = resolveEnvironment(deployProd, undefined, [], { connectionId: 'c1', environmentParameter: 'env', parameters: { env: '  ' } });
  assert.equal(emptyParam.nameSource, 'configuration');

  const rules: EnvironmentRule[] = [
    { match: { buildTypeId: 'Other' }, environment: { name: 'Never' } },
    { match: { namePattern: '*Production' }, environment: { name: 'Prod EU', type: 'production' } },
    { match: { projectPattern: 'Shop :: *' }, environment: { type: 'staging' } },
  ];
  const byRule = resolveEnvironment(deployProd, undefined, rules, { connectionId: 'c1' });
  assert.deepEqual([byRule.displayName, byRule.type, byRule.matchedRule, byRule.nameSource, byRule.typeSource], ['Prod EU', 'production', 1, 'rule', 'rule']);
  assert.equal(byRule.id, 'c1/prod-eu');
  // Type from a later rule, name from the configuration.
  const mixed = resolveEnvironment(deployQa, undefined, rules, { connectionId: 'c1' });
  assert.deepEqual([mixed.displayName, mixed.type, mixed.matchedRule, mixed.nameSource], ['QA', 'staging', 2, 'configuration']);
  // No keyword: unmapped, never production.
  const unmapped = resolveEnvironment({ id: 'X', name: 'Deploy to eu-west-1' }, undefined, [], { connectionId: 'c1' });
  assert.deepEqual([unmapped.displayName, unmapped.type, unmapped.matchedRule], ['eu-west-1', 'unmapped', undefined]);
});

test('environment ids are stable slugs, bounded to 255 characters', () => {
  assert.equal(environmentId('conn', 'Prod EU'), environmentId('conn', 'prod-eu'));
  assert.equal(environmentId('conn', 'Продакшн'), 'conn/продакшн');
  assert.match(environmentId('conn', '***'), /^conn\/env-[0-9a-f]{12}$/);
  const long = environmentId('conn', 'x'.repeat(400));
  assert.equal(long.length, 255);
  assert.equal(long, environmentId('conn', 'x'.repeat(400)));
  assert.notEqual(long, environmentId('conn', 'x'.repeat(401)));
  assert.equal(boundedId('short'), 'short');
  assert.equal(truncateText('abcdef', 4), 'abc…');
  // Never splits a surrogate pair.
  assert.equal(truncateText('ab😀cd', 4), 'ab…');
});

test('validateEnvironmentRules reports invalid regexes, types and empty names', () => {
  assert.deepEqual(validateEnvironmentRules([{ match: { namePattern: 'Deploy*' }, environment: { type: 'production' } }]), []);
  const errors = validateEnvironmentRules([
    { match: { namePattern: '/(/' } },
    { match: {}, environment: { type: 'prod' as never, name: ' ' } },
  ]);
  assert.equal(errors.length, 3);
  assert.match(errors[0] ?? '', /^rule 1: namePattern is not a valid regular expression/);
  assert.match(errors[1] ?? '', /^rule 2: unknown environment type "prod"/);
  assert.match(errors[2] ?? '', /^rule 2: environment name is empty/);
});

test('previewEnvironments shows what the rules do to each configuration', () => {
  const rules: EnvironmentRule[] = [
    { match: { namePattern: 'Deploy QA' }, deployment: true },
    { match: { namePattern: 'Rollback*' }, deployment: true, rollback: true, environment: { name: 'Production', type: 'production' } },
  ];
  const rollback: TcBuildTypeRef = { id: 'Shop_Rollback', name: 'Rollback Production', projectName: 'Shop' };
  const preview = previewEnvironments([deployProd, build, deployQa, rollback], rules, { connectionId: 'c1', environmentParameter: 'env.ENVIRONMENT' });
  assert.deepEqual(
    preview.map((p) => [p.buildTypeId, p.deployment, p.deploymentSource, p.deploymentRule, p.environment?.displayName, p.environment?.type, p.rollback]),
    [
      ['Shop_DeployProd', true, 'type', undefined, 'Production', 'production', undefined],
      ['Shop_Build', false, 'type', undefined, undefined, undefined, undefined],
      ['Shop_DeployQa', true, 'rule', 0, 'QA', 'testing', undefined],
      ['Shop_Rollback', true, 'rule', 1, 'Production', 'production', true],
    ],
  );
  assert.match(preview[0]?.environment?.note ?? '', /builds that set env\.ENVIRONMENT use its value/);
  assert.equal(preview[0]?.environment?.id, preview[3]?.environment?.id);
});
