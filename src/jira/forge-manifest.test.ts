// forge/manifest.yml ("Connect on Forge", reference/jira-cloud.md §5): validated with @forge/manifest's
// own full validation (what `forge lint` / `forge deploy` run: JSON schema, scope list, connect module
// names, app.connect ↔ remotes, manifest-variable interpolation), and checked against the Connect
// descriptor so the two cannot drift apart.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { validate } from '@forge/manifest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../config.ts';
import { buildDescriptor, connectModules, LIFECYCLE_ROUTES } from './descriptor.ts';

const MANIFEST_PATH = new URL('../../forge/manifest.yml', import.meta.url);
const MANIFEST_TEXT = readFileSync(MANIFEST_PATH, 'utf8');
const SCOPES = ['read:connect-jira', 'write:connect-jira', 'delete:connect-jira'];
const BASE_URL = 'https://tcj.example.com/jira';

const tmp = mkdtempSync(join(tmpdir(), 'tcj-forge-manifest-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The manifest variables forge/manifest.yml declares; the Forge CLI (and @forge/manifest) read them from process.env. */
type ManifestEnv = { BASE_URL?: string; APP_KEY?: string };

/** The parts of the manifest this test looks at. */
interface Manifest {
  app: { id: string; connect: { key?: string; remote?: string; authentication?: string } };
  remotes?: { key: string; baseUrl: string }[];
  permissions: { scopes: string[] };
  connectModules: Record<string, Record<string, unknown>[]>;
  environment: { variables: unknown[] };
}

interface Outcome {
  success: boolean;
  /** "level: message" of every error and warning. */
  problems: string[];
  /** The manifest after manifest-variable interpolation, i.e. what `forge deploy` uploads. */
  content: Manifest;
}

let fileNo = 0;

/** Runs @forge/manifest's full validation on `text` with exactly the given manifest variables set. */
async function validateManifest(text: string, env: ManifestEnv): Promise<Outcome> {
  const file = join(tmp, `manifest-${++fileNo}.yml`);
  writeFileSync(file, text);
  const saved = { BASE_URL: process.env.BASE_URL, APP_KEY: process.env.APP_KEY };
  const set = (name: keyof ManifestEnv, value: string | undefined) => {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };
  set('BASE_URL', env.BASE_URL);
  set('APP_KEY', env.APP_KEY);
  try {
    const r = await validate(false, file);
    return {
      success: r.success,
      problems: (r.errors ?? []).map((e) => `${e.level}: ${e.message}`),
      content: r.manifestObject?.yamlContent as Manifest,
    };
  } finally {
    set('BASE_URL', saved.BASE_URL);
    set('APP_KEY', saved.APP_KEY);
  }
}

/** The committed manifest with one edit applied (on the un-interpolated YAML). */
function edited(edit: (m: Manifest) => void): string {
  const m = parse(MANIFEST_TEXT) as Manifest;
  edit(m);
  return stringify(m);
}

test('forge/manifest.yml passes @forge/manifest full validation without errors or warnings', async () => {
  const r = await validateManifest(MANIFEST_TEXT, { BASE_URL });
  assert.deepEqual(r.problems, []);
  assert.equal(r.success, true);
  // The committed app id is the placeholder `forge register` overwrites; the validator must accept it.
  assert.match(r.content.app.id, /^ari:cloud:ecosystem::app\/\S+$/);
});

test('the validator rejects invalid manifests', async () => {
  const cases: [string, string, ManifestEnv, RegExp][] = [
    ['app.connect.key removed', edited((m) => delete m.app.connect.key), { BASE_URL }, /required property 'key'/],
    ['unknown scope', edited((m) => m.permissions.scopes.push('read:teamcity-jira')), { BASE_URL }, /Invalid 'scopes' permission.*read:teamcity-jira/],
    ['unknown connect module', edited((m) => (m.connectModules['jira:notAModule'] = [{ key: 'x' }])), { BASE_URL }, /jira:notAModule/],
    ['no remote for app.connect.remote', edited((m) => delete m.remotes), { BASE_URL }, /no remote found with key 'connect'/],
    ['app id not an ari', edited((m) => (m.app.id = 'teamcity')), { BASE_URL }, /must match pattern/],
    ['authentication other than jwt', edited((m) => (m.app.connect.authentication = 'none')), { BASE_URL }, /allowed values are 'jwt'/],
    ['duplicate module key', edited((m) => (m.connectModules['jira:adminPages']![0]!.key = 'tcj-project')), { BASE_URL }, /duplicate module key 'tcj-project'/],
    ['BASE_URL not set', MANIFEST_TEXT, {}, /could not find environment variable 'BASE_URL'/],
    ['APP_KEY not a valid connect key', MANIFEST_TEXT, { BASE_URL, APP_KEY: 'has spaces' }, /connect property key/],
  ];
  for (const [name, text, env, expected] of cases) {
    const r = await validateManifest(text, env);
    assert.equal(r.success, false, `${name}: expected the manifest to be invalid`);
    assert.ok(
      r.problems.some((p) => p.startsWith('error: ') && expected.test(p)),
      `${name}: expected an error matching ${String(expected)}, got ${JSON.stringify(r.problems)}`,
    );
  }
});

test('connectModules carry exactly the descriptor modules (with BASE_URL substituted) plus the lifecycle', async () => {
  for (const baseUrl of [BASE_URL, 'https://teamcity-jira.example.org']) {
    const { content, success } = await validateManifest(MANIFEST_TEXT, { BASE_URL: baseUrl });
    assert.equal(success, true);
    // Connect-on-Forge spells each descriptor module `jira:<type>` and always as a list, so the
    // single-object modules (providers, configurePage, postInstallPage) become one-element lists.
    const expected: Record<string, unknown[]> = Object.fromEntries(
      Object.entries(connectModules(baseUrl)).map(([type, m]) => [`jira:${type}`, Array.isArray(m) ? m : [m]]),
    );
    const actual = { ...content.connectModules };
    const lifecycle = actual['jira:lifecycle'];
    delete actual['jira:lifecycle'];
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), 'module types');
    for (const [type, modules] of Object.entries(expected)) {
      assert.deepEqual(actual[type], modules, `${type} at ${baseUrl}`);
    }
    // Same modules as the descriptor the backend serves (it is built from connectModules too).
    const descriptor = buildDescriptor({ appKey: loadConfig({}).appKey, baseUrl });
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(descriptor.modules).map((t) => `jira:${t}`).sort());

    // Forge sends only installed/uninstalled; the routes are the backend's.
    assert.deepEqual(lifecycle, [
      { key: 'lifecycle-events', installed: LIFECYCLE_ROUTES.installed, uninstalled: LIFECYCLE_ROUTES.uninstalled },
    ]);

    // The connect remote is the backend's base URL, i.e. the descriptor's baseUrl.
    assert.equal(content.app.connect.remote, 'connect');
    assert.deepEqual(content.remotes, [{ key: 'connect', baseUrl: descriptor.baseUrl }]);
  }
});

test('app.connect.key is the app key (default, or APP_KEY like the backend) and authentication is jwt', async () => {
  const defaultKey = loadConfig({}).appKey;
  const byDefault = await validateManifest(MANIFEST_TEXT, { BASE_URL });
  assert.equal(byDefault.content.app.connect.key, defaultKey);
  assert.equal(byDefault.content.app.connect.authentication, 'jwt');

  const custom = await validateManifest(MANIFEST_TEXT, { BASE_URL, APP_KEY: 'com.example.tcj' });
  assert.equal(custom.success, true);
  assert.equal(custom.content.app.connect.key, loadConfig({ APP_KEY: 'com.example.tcj' }).appKey);

  // The committed file takes both values from manifest variables, never from a hard-coded deployment.
  const raw = parse(MANIFEST_TEXT) as Manifest;
  assert.equal(raw.app.connect.key, '${APP_KEY}');
  assert.deepEqual(raw.remotes, [{ key: 'connect', baseUrl: '${BASE_URL}' }]);
  assert.deepEqual(raw.environment.variables, ['BASE_URL', { key: 'APP_KEY', default: defaultKey }]);
});

test('permission scopes are exactly read/write/delete:connect-jira (the descriptor READ, WRITE, DELETE)', async () => {
  const { content } = await validateManifest(MANIFEST_TEXT, { BASE_URL });
  assert.deepEqual(content.permissions, { scopes: SCOPES });
  const descriptorScopes = buildDescriptor({ appKey: 'k', baseUrl: BASE_URL }).scopes;
  assert.deepEqual(descriptorScopes.map((s) => `${s.toLowerCase()}:connect-jira`), SCOPES);
});
