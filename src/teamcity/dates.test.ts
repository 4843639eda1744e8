// TeamCity dates: parse/format round trips, server offsets (+03:00, −05:00) over real HTTP against the
// simulator, `%2B` in the URL, and the server clock helpers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Dispatcher } from 'undici';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { TeamCityClient } from './client.ts';
import {
  formatForServer,
  formatTcDate,
  fromServerTime,
  parseTcDate,
  serverClockFrom,
  tcDateOffsetMinutes,
  toServerTime,
  tryParseTcDate,
} from './dates.ts';
import { TeamCityProtocolError } from './errors.ts';
import { buildIdLocator, finishedBuildsLocator } from './locator.ts';
import { adminClient } from '../../test/helpers/teamcity.ts';

describe('parseTcDate / formatTcDate', () => {
  it('parses the documented samples with their offsets', () => {
    assert.equal(parseTcDate('20200120T032125+0000').toISOString(), '2020-01-20T03:21:25.000Z');
    assert.equal(parseTcDate('20150501T212011-0500').toISOString(), '2015-05-02T02:20:11.000Z');
    assert.equal(parseTcDate('20250812T000012-0300').toISOString(), '2025-08-12T03:00:12.000Z');
    assert.equal(parseTcDate('20201107T224939+0300').toISOString(), '2020-11-07T19:49:39.000Z');
    assert.equal(parseTcDate('20240229T235959+0530').toISOString(), '2024-02-29T18:29:59.000Z');
  });

  it('accepts milliseconds and a colon in the offset (custom date formats), nothing looser', () => {
    assert.equal(parseTcDate('20240101T120000.250+0100').toISOString(), '2024-01-01T11:00:00.250Z');
    assert.equal(parseTcDate('20240101T120000+01:00').toISOString(), '2024-01-01T11:00:00.000Z');
    for (const bad of ['20240101T120000', '20240101T120000Z', '2024-01-01T12:00:00Z', '20240101 120000+0000', '20240230T120000+0000', '20241301T120000+0000', '', 'N/A']) {
      assert.throws(() => parseTcDate(bad), TeamCityProtocolError, bad);
      assert.equal(tryParseTcDate(bad), undefined, bad);
    }
    assert.equal(tryParseTcDate(undefined), undefined);
  });

  it('formats in any fixed offset, second precision (floored), and round-trips', () => {
    const d = new Date('2025-06-02T09:00:07.999Z');
    assert.equal(formatTcDate(d), '20250602T090007+0000');
    assert.equal(formatTcDate(d, 180), '20250602T120007+0300');
    assert.equal(formatTcDate(d, -300), '20250602T040007-0500');
    assert.equal(formatTcDate(d, 345), '20250602T144507+0545');
    assert.equal(formatTcDate(new Date('2025-01-01T02:00:00Z'), -300), '20241231T210000-0500', 'crosses the day/year boundary');
    for (const off of [0, 180, -300, 345, -570, 840, -720]) {
      for (const iso of ['2025-06-02T09:00:07Z', '2024-02-29T23:59:59Z', '1999-12-31T23:30:00Z']) {
        const s = formatTcDate(new Date(iso), off);
        assert.equal(parseTcDate(s).toISOString(), new Date(iso).toISOString(), s);
        assert.equal(tcDateOffsetMinutes(s), off);
      }
    }
    assert.throws(() => formatTcDate(new Date(NaN)), RangeError);
    assert.throws(() => formatTcDate(d, 2000), RangeError);
  });

  it('server clock: offset from currentTime, skew measured around the request', () => {
    const ours = Date.parse('2025-06-02T09:00:00Z');
    // server reads 12:00:10+03:00 = 09:00:10Z while our clock says 09:00:00Z → server ~10.5 s ahead
    const clock = serverClockFrom('20250602T120010+0300', ours - 100, ours + 100);
    assert.equal(clock.offsetMinutes, 180);
    assert.equal(clock.skewMs, 10_500);
    const serverNow = toServerTime(clock, new Date(ours));
    assert.equal(serverNow.toISOString(), '2025-06-02T09:00:10.500Z');
    assert.equal(fromServerTime(clock, serverNow).getTime(), ours);
    assert.equal(formatForServer(clock, serverNow), '20250602T120010+0300');
    assert.throws(() => serverClockFrom('yesterday', ours), TeamCityProtocolError);
  });
});

for (const utcOffsetMinutes of [180, -300]) {
  describe(`server in UTC${utcOffsetMinutes > 0 ? '+' : '−'}${Math.abs(utcOffsetMinutes) / 60} (simulator)`, () => {
    let sim: TeamCitySimulator;
    let dispatcher: Dispatcher;
    let client: TeamCityClient;
    let started: number;
    let finished: number;
    let buildId: number;

    before(async () => {
      sim = await startTeamCitySimulator({ utcOffsetMinutes, startTime: '2025-06-02T09:00:00.000Z' });
      ({ client, dispatcher } = adminClient(sim));
      const m = sim.model;
      m.addProject({ id: 'P' });
      m.addVcsRoot({ id: 'P_Git', projectId: 'P' });
      m.addBuildType({ id: 'P_Build', projectId: 'P', vcsRootIds: ['P_Git'] });
      m.advance(3_456); // not on a whole second
      const b = m.queueBuild({ buildTypeId: 'P_Build' });
      m.advance(10_000);
      m.startBuild(b.id);
      m.advance(125_000);
      m.finishBuild(b.id);
      buildId = b.id;
      started = m.build(b.id).startDate!;
      finished = m.build(b.id).finishDate!;
      m.advance(60_000);
    });
    after(async () => {
      await sim.close();
      await dispatcher.close();
    });

    it('dates come back in the server offset and parse to the true instants', async () => {
      const b = await client.getBuild(buildId);
      assert.ok(b);
      const sign = utcOffsetMinutes > 0 ? '+' : '-';
      const hh = String(Math.abs(utcOffsetMinutes) / 60).padStart(2, '0');
      for (const s of [b.queuedDate!, b.startDate!, b.finishDate!]) assert.ok(s.endsWith(`${sign}${hh}00`), s);
      assert.equal(parseTcDate(b.startDate!).getTime(), Math.floor(started / 1000) * 1000);
      assert.equal(parseTcDate(b.finishDate!).getTime(), Math.floor(finished / 1000) * 1000);
      assert.equal(formatTcDate(parseTcDate(b.startDate!), utcOffsetMinutes), b.startDate);
    });

    it('server clock: offset and skew from /app/rest/server (the simulator clock is virtual)', async () => {
      const { server, clock } = await client.getServerClock();
      assert.equal(clock.offsetMinutes, utcOffsetMinutes);
      assert.equal(tcDateOffsetMinutes(server.currentTime!), utcOffsetMinutes);
      const serverNow = toServerTime(clock).getTime();
      assert.ok(Math.abs(serverNow - sim.model.now()) < 2_000, `${serverNow} vs ${sim.model.now()}`);
    });

    it('locator dates in the server offset select by the exact instant; "+" travels as %2B', async () => {
      const { clock } = await client.getServerClock();
      const ids = async (startedAfter: number, finishedAfter: number): Promise<number[]> => {
        const out: number[] = [];
        const loc = finishedBuildsLocator({
          startedAfter: new Date(startedAfter),
          finishedAfter: new Date(finishedAfter),
          offsetMinutes: clock.offsetMinutes,
        });
        for await (const p of client.builds(loc, 'count,nextHref,build(id)', { stopOnEmptyPage: false })) out.push(...p.items.map((x) => x.id));
        return out;
      };
      const sec = (t: number): number => Math.floor(t / 1000) * 1000;
      sim.clearRequests();
      // The build started/finished at …x.456 s: TeamCity compares entity times in ms (2018.2+) with our
      // second-precision dates, so "after floor(t)" includes it and "after floor(t)+1 s" does not.
      assert.notEqual(started % 1000, 0);
      assert.deepEqual(await ids(sec(started), sec(finished)), [buildId]);
      assert.deepEqual(await ids(sec(started) + 1000, sec(finished)), [], 'started before the startDate bound');
      assert.deepEqual(await ids(sec(started), sec(finished) + 1000), [], 'finished before the finishDate bound');
      const reqs = sim.requests().filter((r) => r.endpoint === 'builds');
      assert.equal(reqs.length, 3);
      for (const r of reqs) {
        assert.equal(r.status, 200);
        if (utcOffsetMinutes > 0) assert.match(r.rawQuery, /%2B0300/);
        else assert.match(r.rawQuery, /-0500/);
        assert.doesNotMatch(r.rawQuery.split('&fields=')[0]!, /\+/, 'no literal + in the locator');
      }
    });

    it('a literal "+" would be read as a space by TeamCity (why %2B matters)', async () => {
      const raw = `${sim.url}/app/rest/builds?locator=startDate:(date:${formatTcDate(new Date(started), 180)},condition:after)`;
      const res = await fetch(raw, { headers: { accept: 'application/json', authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /%2B/);
      // …while the client's encoding of the same date works
      const b = await client.getBuild(buildId, 'id');
      assert.equal(b?.id, buildId);
      assert.equal(buildIdLocator(buildId), `id:${buildId}`);
    });
  });
}
