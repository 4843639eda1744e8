import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocatorError, parseLocator, renderValue, setDimension } from './locator.ts';
import { Fields } from './fields.ts';
import { formatTcDate, parseLegacyTcDate, parseTcTime } from './format.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');

describe('locator parser (reference §2.1)', () => {
  it('parses dimensions, repeated dimensions and single values', () => {
    const l = parseLocator('buildType:Proj_Build,count:1,tag:a,tag:b');
    assert.equal(l.single, null);
    assert.equal(l.get('buildType'), 'Proj_Build');
    assert.equal(l.int('count'), 1);
    assert.deepEqual(l.all('tag'), ['a', 'b']);
    assert.throws(() => l.get('tag'), LocatorError);
    assert.equal(parseLocator('12345').single, '12345');
    assert.equal(parseLocator('(a:b,c)').single, 'a:b,c');
  });

  it('strips outer parentheses and keeps nested ones verbatim', () => {
    const l = parseLocator('buildType:(id:X,project:(id:P)),branch:(name:(value:feature/a,matchType:starts-with)),state:any');
    assert.equal(l.get('buildType'), 'id:X,project:(id:P)');
    assert.equal(l.get('branch'), 'name:(value:feature/a,matchType:starts-with)');
    assert.equal(l.get('state'), 'any');
    const inner = parseLocator(l.get('buildType')!);
    assert.equal(inner.get('project'), 'id:P');
  });

  it('decodes $base64 values (URL-safe or standard, padding optional) and whole-text $base64', () => {
    const name = 'feature/x:(weird),name';
    assert.equal(parseLocator(`name:($base64:${b64(name)})`).get('name'), name);
    assert.equal(parseLocator(`name:$base64:${b64('plain')}`).get('name'), 'plain');
    const std = Buffer.from('a?>b', 'utf8').toString('base64'); // contains '/' or '+' in std alphabet
    assert.equal(parseLocator(`x:($base64:${std})`).get('x'), 'a?>b');
    assert.equal(parseLocator(`$base64:${b64('id:1')}`).single, 'id:1');
    assert.throws(() => parseLocator('x:($base64:***)'), /Invalid Base64url/);
  });

  it('rejects syntax errors with a 400-class LocatorError', () => {
    for (const bad of ['', 'a:(b', ':x', 'a:(b)c', 'na me:1', 'a:1,,b:2']) {
      assert.throws(() => parseLocator(bad), (e: unknown) => e instanceof LocatorError && e.status === 400, bad);
    }
  });

  it('treats $any as present-but-null for booleans', () => {
    const l = parseLocator('personal:$any,canceled:true,failedToStart:any');
    assert.equal(l.bool('personal'), null);
    assert.equal(l.bool('canceled'), true);
    assert.equal(l.bool('failedToStart'), null);
    assert.throws(() => parseLocator('personal:maybe').bool('personal'), /not a boolean/);
  });

  it('reports unknown dimensions and $help like TeamCity', () => {
    assert.throws(() => parseLocator('foo:1,count:2').checkDimensions(['count']), /Locator dimension \[foo\] is unknown\. Supported dimensions are: \[count\]/);
    assert.throws(() => parseLocator('a:1,b:2').checkDimensions(['count']), /\[a, b\] are unknown/);
    assert.throws(() => parseLocator('$help').checkDimensions(['count'], ['hidden']), /Locator help requested: Supported dimensions are: \[count\]/);
    parseLocator('hidden:1').checkDimensions(['count'], ['hidden']);
  });

  it('renders values and sets dimensions in place (nextHref construction)', () => {
    assert.equal(renderValue('plain'), 'plain');
    assert.equal(renderValue('a:b'), '(a:b)');
    assert.equal(renderValue('a)b'), `($base64:${b64('a)b')})`);
    assert.equal(setDimension('buildType:X,count:1', 'start', 1), 'buildType:X,count:1,start:1');
    assert.equal(setDimension('start:0,count:10', 'start', 10), 'start:10,count:10');
    assert.equal(setDimension('buildType:(id:X),lookupLimit:5000', 'lookupLimit', 10000), 'buildType:(id:X),lookupLimit:10000');
    assert.equal(setDimension(null, 'start', 100), 'start:100');
  });
});

describe('fields parser (reference §3)', () => {
  it('parses nested specs, patterns and $locator', () => {
    const f = Fields.parse('count,nextHref,build(id,number,buildType(id,type),changes($locator(count:5),change(id,comment)))', Fields.LONG);
    assert.equal(f.inc('count', false, false), true);
    assert.equal(f.inc('href', true, true), false);
    const b = f.nested('build');
    assert.equal(b.inc('id', true, true), true);
    assert.equal(b.inc('status', true, true), false);
    assert.equal(b.nested('buildType').inc('type', false, false), true);
    const ch = b.nested('changes');
    assert.equal(ch.locator(), 'count:5');
    assert.equal(ch.nested('change').inc('comment', false, true), true);
    assert.equal(ch.nested('change').inc('version', true, true), false);
  });

  it('implements $short, $long, *, ** and - and explicitness for false values', () => {
    assert.equal(Fields.parse('$short', Fields.LONG).inc('statusText', false, true), false);
    assert.equal(Fields.parse('$long', Fields.SHORT).inc('statusText', false, true), true);
    assert.equal(Fields.parse('*', Fields.SHORT).inc('taskId', false, false), true);
    assert.equal(Fields.parse('*', Fields.SHORT).explicit('personal'), true);
    assert.equal(Fields.parse('-', Fields.SHORT).inc('id', true, true), false);
    assert.equal(Fields.parse('**', Fields.SHORT).nested('a').nested('b').inc('x', false, false), true);
    assert.equal(Fields.SHORT.explicit('personal'), false);
    assert.equal(Fields.parse('$short,buildType(type)', Fields.LONG).inc('id', true, true), true);
    assert.equal(Fields.parse('$short,buildType(type)', Fields.LONG).inc('statusText', false, true), false);
    assert.equal(Fields.parse('$short,buildType(type)', Fields.LONG).nested('buildType').inc('type', false, false), true);
  });
});

describe('dates (reference §4.1, §2.2)', () => {
  it('formats in the server offset with second precision', () => {
    const t = Date.UTC(2020, 0, 20, 3, 21, 25, 999);
    assert.equal(formatTcDate(t, 0), '20200120T032125+0000');
    assert.equal(formatTcDate(t, 180), '20200120T062125+0300');
    assert.equal(formatTcDate(t, -300), '20200119T222125-0500');
  });

  it('parses TeamCity, ISO-8601 and relative times; rejects unescaped +', () => {
    const t = Date.UTC(2024, 0, 1, 12, 0, 0);
    assert.equal(parseTcTime('20240101T120000+0000', 0), t);
    assert.equal(parseTcTime('20240101T140000+0200', 0), t);
    assert.equal(parseTcTime('20240101T120000.000+0000', 0), t);
    assert.equal(parseTcTime('2024-01-01T12:00:00Z', 0), t);
    assert.equal(parseTcTime('2024-01-01T14:00:00+02:00', 0), t);
    assert.equal(parseTcTime('-1d2h', t), t - 26 * 3_600_000);
    assert.throws(() => parseTcTime('20240101T120000 0000', 0), /'\+' should be escaped in URL as '%2B'/);
    assert.throws(() => parseTcTime('yesterday', 0), /Could not parse date/);
    assert.equal(parseLegacyTcDate('20240101T120000+0000'), t);
    assert.throws(() => parseLegacyTcDate('2024-01-01T12:00:00Z'), /Could not parse date/);
  });
});
