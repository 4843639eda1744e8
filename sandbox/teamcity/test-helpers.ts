// Shared helpers for the simulator tests (not a test file itself).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

export const FIXTURES = new URL('../../../shared/fixtures/teamcity/', import.meta.url);

export function fixtureText(rel: string): string {
  return readFileSync(new URL(rel, FIXTURES), 'utf8').replace(/^\uFEFF/, '');
}

export function fixtureJson(rel: string): unknown {
  return JSON.parse(fixtureText(rel)) as unknown;
}

export type Shape = string | { [k: string]: Shape } | Shape[];

/**
 * Structural shape of a JSON value: primitives → type name, objects → key → shape, arrays → [merged element
 * shape] (elements' object keys unioned), empty arrays → [] (a wildcard for any array).
 */
export function shapeOf(v: unknown): Shape {
  if (v === null) return 'null';
  if (Array.isArray(v)) {
    if (v.length === 0) return [];
    return [v.map(shapeOf).reduce(mergeShapes)];
  }
  if (typeof v === 'object') {
    const out: Record<string, Shape> = {};
    for (const k of Object.keys(v).sort()) out[k] = shapeOf((v as Record<string, unknown>)[k]);
    return out;
  }
  return typeof v;
}

function mergeShapes(a: Shape, b: Shape): Shape {
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, Shape> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? mergeShapes(out[k]!, v) : v;
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length === 0) return b;
    if (b.length === 0) return a;
    return [mergeShapes(a[0]!, b[0]!)];
  }
  return a;
}

/** Asserts same keys and types recursively; an empty array on either side matches any array. */
export function assertSameShape(actual: unknown, expected: unknown, path = '$'): void {
  compareShapes(shapeOf(actual), shapeOf(expected), path);
}

function compareShapes(a: Shape, e: Shape, path: string): void {
  if (Array.isArray(a) || Array.isArray(e)) {
    assert.ok(Array.isArray(a) && Array.isArray(e), `${path}: expected ${JSON.stringify(e)}, got ${JSON.stringify(a)}`);
    if (a.length > 0 && e.length > 0) compareShapes(a[0]!, e[0]!, `${path}[]`);
    return;
  }
  if (typeof a === 'string' || typeof e === 'string') {
    assert.equal(a, e, `${path}: type differs`);
    return;
  }
  assert.deepEqual(Object.keys(a).sort(), Object.keys(e).sort(), `${path}: keys differ`);
  for (const k of Object.keys(e)) compareShapes(a[k]!, e[k]!, `${path}.${k}`);
}

export const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export const ADMIN = basic('admin', 'admin');

/** Parsed JSON of a response: deliberately untyped, tests assert on it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJson = any;

export interface Got {
  status: number;
  headers: Headers;
  text: string;
  json: AnyJson;
}

/** GET over loopback with `Accept: application/json` and admin credentials unless overridden. */
export async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Got> {
  const res = await fetch(base + path, {
    headers: { accept: 'application/json', authorization: ADMIN, ...headers },
  });
  const text = await res.text();
  let json: unknown = undefined;
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Follows nextHref to the end; returns all items (by `itemKey`) and the number of pages. */
export async function followAll(base: string, firstPath: string, itemKey = 'build'): Promise<{ items: AnyJson[]; pages: number }> {
  const items: AnyJson[] = [];
  let path: string | undefined = firstPath;
  let pages = 0;
  while (path !== undefined) {
    const r = await get(base, path);
    assert.equal(r.status, 200, r.text);
    pages++;
    const page = r.json as Record<string, unknown>;
    for (const item of (page[itemKey] as unknown[] | undefined) ?? []) items.push(item);
    path = page.nextHref as string | undefined;
    assert.ok(pages < 10_000, 'runaway paging');
  }
  return { items, pages };
}

export const enc = encodeURIComponent;
