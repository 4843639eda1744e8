// Error bodies → one short line (JSON 2025+, XML, text 2023, 401 text, HTML ignored), on the captured fixtures
// and over real HTTP in both simulator formats; status → error class.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createLogger } from '../log.ts';
import { TeamCityClient } from './client.ts';
import {
  TeamCityAuthError,
  TeamCityError,
  TeamCityForbiddenError,
  TeamCityHttpError,
  TeamCityNotFoundError,
  TeamCityUnavailableError,
  oneLine,
  parseErrorBody,
} from './errors.ts';
import { adminClient } from '../../test/helpers/teamcity.ts';

const FIXTURES = new URL('../../../shared/fixtures/teamcity/errors/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

describe('parseErrorBody', () => {
  it('2023 text/plain: the Details message without the exception class', () => {
    assert.equal(parseErrorBody(404, fixture('404-text-plain-user-not-found-2023.txt'), 'text/plain;charset=UTF-8'), 'User not found');
  });

  it('2025 JSON {"errors":[…]}: errors[0].message', () => {
    assert.equal(parseErrorBody(406, fixture('406-json-not-acceptable-2025.11.json'), 'application/json'), "Make sure you have supplied correct 'Accept' header.");
  });

  it('2025 XML <errors><error><message>', () => {
    assert.equal(
      parseErrorBody(404, fixture('404-xml-field-not-supported-2025.11.xml'), 'application/xml'),
      "Field 'snapshot-dependencies' is not supported. Supported are: number, status, statusText, id, startDate, finishDate, buildTypeId, branchName.",
    );
    assert.equal(parseErrorBody(400, '<errors><error><message>a &amp; b &lt;c&gt; &#x41;</message></error></errors>'), 'a & b <c> A');
  });

  it('the 401 web-layer text: its first line', () => {
    const http = fixture('401-unauthenticated-response-2024.http');
    const body = http.slice(http.search(/\r?\n\r?\n/)).trim();
    assert.equal(parseErrorBody(401, body, 'text/plain;charset=UTF-8'), 'Authentication required');
  });

  it('falls back to the status for HTML, empty, huge or unrecognised bodies; never echoes HTML or stack traces', () => {
    const html = '<!DOCTYPE html><html><head><title>Log in to TeamCity</title></head><body><form id="loginForm"></form></body></html>';
    assert.equal(parseErrorBody(502, html, 'text/html'), 'HTTP 502 Bad Gateway');
    assert.equal(parseErrorBody(502, html, ''), 'HTTP 502 Bad Gateway');
    assert.equal(parseErrorBody(500, ''), 'HTTP 500 Internal Server Error');
    assert.equal(parseErrorBody(503, 'x'.repeat(5000)), 'HTTP 503 Service Unavailable');
    assert.equal(parseErrorBody(418, '{"unexpected":true}', 'application/json'), '{"unexpected":true}');
    const trace = Array.from({ length: 90 }, (_v, i) => `\tat jetbrains.Foo.bar(Foo.java:${i})`).join('\n');
    const json = JSON.stringify({ errors: [{ message: 'Nothing is found by locator', stackTrace: trace, statusText: 'x' }] });
    assert.equal(parseErrorBody(404, json, 'application/json'), 'Nothing is found by locator');
  });

  it('one line, bounded length', () => {
    assert.equal(oneLine('a\r\n\tb   c\u0000d'), 'a b c d');
    assert.equal(oneLine('y'.repeat(1000)).length, 300);
  });

  it('class hierarchy', () => {
    const e = new TeamCityNotFoundError('User not found', { endpoint: '/app/rest/users/{userLocator}' });
    assert.ok(e instanceof TeamCityHttpError && e instanceof TeamCityError && e instanceof Error);
    assert.equal(e.status, 404);
    assert.equal(e.message, 'TeamCity answered 404: User not found');
    assert.equal(new TeamCityAuthError('Authentication required').status, 401);
    assert.ok(!(new TeamCityUnavailableError('x', 4) instanceof TeamCityHttpError));
  });
});

for (const errorFormat of ['text2023', 'structured2025'] as const) {
  describe(`error bodies from the simulator (${errorFormat})`, () => {
    let sim: TeamCitySimulator;
    let dispatcher: Dispatcher;
    let client: TeamCityClient;

    before(async () => {
      sim = await startTeamCitySimulator({ version: errorFormat === 'text2023' ? '2023.05.4' : '2025.11.2', errorFormat });
      ({ client, dispatcher } = adminClient(sim, { retryBaseMs: 1 }));
      const m = sim.model;
      m.addProject({ id: 'P' });
      m.addVcsRoot({ id: 'P_Git', projectId: 'P' });
      m.addBuildType({ id: 'P_Build', projectId: 'P', vcsRootIds: ['P_Git'] });
      m.runBuild({ buildTypeId: 'P_Build' });
      m.addUser({ username: 'limited', password: 'limited-pw', viewRuntimeData: false });
    });
    after(async () => {
      await sim.close();
      await dispatcher.close();
    });

    const single = (s: string): void => {
      assert.doesNotMatch(s, /[\r\n]/);
      assert.ok(s.length <= 300);
    };

    it('400 bad locator → TeamCityHttpError with the server message, not retried', async () => {
      sim.clearRequests();
      const err = await (async () => {
        for await (const _p of client.builds('noSuchDimension:1')) assert.fail('no page expected');
      })().then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TeamCityHttpError);
      assert.equal(err.status, 400);
      assert.equal(err.endpoint, '/app/rest/builds');
      single(err.serverMessage);
      assert.match(err.serverMessage, /noSuchDimension|not supported|Unsupported|unknown/i);
      assert.doesNotMatch(err.serverMessage, /Responding with error|Exception:/);
      assert.equal(sim.requests().length, 1);
    });

    it('404 → TeamCityNotFoundError (or undefined from the get* helpers)', async () => {
      assert.equal(await client.getBuildType('id:Nope'), undefined);
      const err = await (async () => {
        for await (const _p of client.changes(999_999)) assert.fail('no page expected');
      })().then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TeamCityNotFoundError, String(err));
      single(err.serverMessage);
      assert.doesNotMatch(err.serverMessage, /jetbrains\.buildServer/);
    });

    it('403 (build parameters without the runtime-data permission) → TeamCityForbiddenError', async () => {
      const limited = new TeamCityClient({
        baseUrl: sim.url,
        auth: { type: 'basic', username: 'limited', password: 'limited-pw' },
        dispatcher,
        log: createLogger({ level: 'silent' }),
      });
      const err = await limited.getBuild(1, 'id,properties(property(name,value))').then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TeamCityForbiddenError, String(err));
      single(err.serverMessage);
      assert.match(err.serverMessage, /permission/);
    });

    it('5xx bodies are parsed too (message of the final TeamCityUnavailableError)', async () => {
      sim.faults.failNext(4, 500);
      const err = await client.getServer().then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TeamCityUnavailableError, String(err));
      assert.equal(err.status, 500);
      assert.equal(err.attempts, 4);
      assert.match(err.message, /^TeamCity unavailable: HTTP 500 Internal Server Error: Simulated server error \(after 4 attempts\)$/);
    });
  });
}
