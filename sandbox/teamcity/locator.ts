// TeamCity locator parser, following reference §2.1 (TCR data/Locator.java behaviour):
//  * `dim:value,dim:value`; values up to the next `,` at nesting level 0;
//  * `dim:(complex, value)` — outer parentheses stripped, inner ones must balance;
//  * `dim(value)` (no colon) is also accepted, as in the Java parser (used by `fields`);
//  * a whole-text `(…)` is a single value, `$base64:<b64url>` (whole text or a dimension value) is decoded
//    (URL-safe alphabet first, then standard; padding optional);
//  * text without `:` (and without a `(`…`)` pair) is a single value (`/builds/123` ≙ `id:123`);
//  * `$any` = "dimension present, value null"; `$help` = error listing the supported dimensions;
//  * dimension names are alpha-numeric (extended mode — used for `fields` — also allows any name without
//    `:` `,` `(` `)`, e.g. `running-info`, `$locator`, `*`).
// Unknown dimensions are reported by `checkDimensions` (400 in the HTTP layer).

export class LocatorError extends Error {
  readonly status = 400 as const;
  readonly exceptionClass = 'jetbrains.buildServer.server.rest.errors.LocatorProcessException';
}

export const ANY = '$any';

export class Locator {
  readonly raw: string;
  /** Non-null for single-value locators (`12345`, `(a:b)`, `$base64:…`). */
  readonly single: string | null;
  readonly dims: Map<string, string[]>;

  constructor(raw: string, single: string | null, dims: Map<string, string[]>) {
    this.raw = raw;
    this.single = single;
    this.dims = dims;
  }

  has(name: string): boolean {
    return this.dims.has(name);
  }

  /** Single value of a dimension; error if it was given several times (as TeamCity does). */
  get(name: string): string | undefined {
    const v = this.dims.get(name);
    if (!v) return undefined;
    if (v.length > 1) {
      throw new LocatorError(`Only single value is supported for '${name}' dimension, but ${v.length} values found.`);
    }
    return v[0];
  }

  all(name: string): string[] {
    return this.dims.get(name) ?? [];
  }

  /** `true` / `false` / `any` (→ null); undefined when absent. */
  bool(name: string): boolean | null | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    return parseBoolAny(v, name);
  }

  int(name: string): number | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v)) {
      throw new LocatorError(`Invalid value of dimension '${name}': '${v}'. Should be a number.`);
    }
    return Number(v);
  }

  /**
   * Rejects unknown dimensions the way TeamCity reports them (checkLocatorFullyProcessed), and answers `$help`.
   * `supported` is listed in messages; `hidden` dimensions work but are not listed.
   */
  checkDimensions(supported: readonly string[], hidden: readonly string[] = []): void {
    const listed = `Supported dimensions are: [${supported.join(', ')}]`;
    if (this.single === '$help' || this.dims.has('$help')) {
      throw new LocatorError(`Locator help requested: ${listed}`);
    }
    if (this.single !== null) return;
    const known = new Set([...supported, ...hidden]);
    const unknown = [...this.dims.keys()].filter((d) => !known.has(d));
    if (unknown.length === 1) {
      throw new LocatorError(`Locator dimension [${unknown[0]}] is unknown. ${listed}`);
    }
    if (unknown.length > 1) {
      throw new LocatorError(`Locator dimensions [${unknown.join(', ')}] are unknown. ${listed}`);
    }
  }
}

export function parseBoolAny(v: string, name: string): boolean | null {
  const l = v.toLowerCase();
  if (l === 'true') return true;
  if (l === 'false') return false;
  if (l === 'any' || v === ANY) return null;
  throw new LocatorError(`Invalid value of dimension '${name}': "${v}" is not a boolean value. Supported are: true, false, any`);
}

function syntaxError(locator: string, pos: number, msg: string): LocatorError {
  return new LocatorError(`Bad locator syntax: ${msg}. Details: locator: '${locator}', at position ${pos}`);
}

const URL_B64 = /^[A-Za-z0-9_-]*={0,2}$/;
const STD_B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeBase64Strict(v: string): string {
  const body = v.replace(/=+$/, '');
  const validLen = body.length % 4 !== 1;
  const padOk = !v.includes('=') || v.length % 4 === 0;
  if (validLen && padOk && URL_B64.test(v)) return Buffer.from(body, 'base64url').toString('utf8');
  if (validLen && padOk && STD_B64.test(v)) return Buffer.from(body, 'base64').toString('utf8');
  throw new LocatorError(`Invalid Base64url character sequence: '${v}'`);
}

/** If `text` is exactly `$base64:<value>` (or `$base64:(<value>)`), returns the decoded value. */
function base64Unescape(text: string): string | null {
  if (!text.startsWith('$base64:')) return null;
  let dims: Map<string, string[]>;
  try {
    dims = parseDims(text, false, false);
  } catch {
    return null;
  }
  if (dims.size !== 1) return null;
  const vals = dims.get('$base64');
  if (!vals || vals.length === 0) return null;
  if (vals.length !== 1) throw new LocatorError('More then 1 $base64 values, only single one is supported');
  return decodeBase64Strict(vals[0] ?? '');
}

/** Scan skipping `(…)` blocks; returns index of stop char, end of string, or -1 if unbalanced. */
function findNext(text: string, from: number, stop: string | null): number {
  let nesting = 0;
  let pos = from;
  while (pos < text.length) {
    const c = text[pos];
    if (c === '(') {
      nesting++;
      pos++;
    } else if (c === ')') {
      if (nesting > 0) nesting--;
      pos++;
      if (nesting === 0 && stop === null) return pos;
    } else if (nesting === 0 && stop !== null && c === stop) {
      return pos;
    } else {
      pos++;
    }
  }
  return nesting !== 0 ? -1 : pos;
}

function validName(name: string, extended: boolean): boolean {
  if (extended) return name.length > 0;
  if (name === '$base64' || name === '$help') return true;
  return /^[\p{L}\p{N}]+$/u.test(name);
}

function parseDims(locator: string, extended: boolean, decode = true): Map<string, string[]> {
  const result = new Map<string, string[]>();
  let i = 0;
  while (i < locator.length) {
    let nameEnd = locator.length;
    let delim: string | null = null;
    for (let j = i; j < locator.length; j++) {
      const c = locator[j];
      if (c === ',' || c === '(' || c === ':') {
        delim = c;
        nameEnd = j;
        break;
      }
    }
    if (nameEnd === i) throw syntaxError(locator, i, `Could not find dimension name, found '${delim}' instead`);
    const name = locator.substring(i, nameEnd);
    if (!validName(name, extended)) {
      throw syntaxError(locator, i, `Invalid dimension name :'${name}'. Should contain only alpha-numeric symbols`);
    }
    let value = '';
    i = nameEnd;
    if (delim === ',') {
      i = nameEnd + 1;
    } else if (delim !== null) {
      if (delim === ':') i = nameEnd + 1;
      if (locator[i] === '(') {
        const end = findNext(locator, i, null);
        if (end < 0) throw syntaxError(locator, i + 1, "Could not find matching ')'");
        value = locator.substring(i + 1, end - 1);
        i = end;
        if (i !== locator.length) {
          if (locator[i] !== ',') throw syntaxError(locator, i, "No dimensions delimiter ',' after complex value");
          i++;
        }
      } else {
        const end = findNext(locator, i, ',');
        if (end < 0) throw syntaxError(locator, i, "Could not find matching ')'");
        value = locator.substring(i, end);
        i = end === locator.length ? end : end + 1;
      }
      if (decode) {
        const un = base64Unescape(value);
        if (un !== null) value = un;
      }
    }
    const list = result.get(name);
    if (list) list.push(value);
    else result.set(name, [value]);
  }
  return result;
}

/**
 * Parses a locator. `extended` = fields mode (single names become dimensions with empty values,
 * names may contain `-`, `$`, `*`).
 */
export function parseLocator(text: string, extended = false): Locator {
  if (text === '') throw new LocatorError('Invalid locator. Cannot be empty.');
  if (text.length > 2 && text.startsWith('(') && text.endsWith(')')) {
    return new Locator(text, text.substring(1, text.length - 1), new Map());
  }
  const b64 = base64Unescape(text);
  if (b64 !== null) return new Locator(text, b64, new Map());
  const hasDims = text.includes(':') || (text.includes('(') && text.includes(')'));
  if (!extended && !hasDims) return new Locator(text, text, new Map());
  return new Locator(text, null, parseDims(text, extended));
}

/** Value rendering used when the server writes locators back (TCR Locator.getValueForRendering). */
export function renderValue(v: string): string {
  let depth = 0;
  let balanced = true;
  for (const c of v) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) balanced = false;
  }
  if (depth !== 0) balanced = false;
  if (!balanced) return `($base64:${Buffer.from(v, 'utf8').toString('base64url')})`;
  if (/[,:()]/.test(v)) return `(${v})`;
  return v;
}

/**
 * Sets (replaces in place, or appends) a top-level dimension in locator text, keeping the rest of the text
 * verbatim (TCR LocatorUtil.setDimension).
 */
export function setDimension(locatorText: string | null, name: string, value: string | number): string {
  const v = renderValue(String(value));
  if (locatorText === null || locatorText === '') return `${name}:${v}`;
  const loc = parseLocator(locatorText);
  if (loc.single !== null) return `${name}:${v}`; // single-value locators are not paged in practice
  // Walk top-level segments to replace in place.
  const parts: string[] = [];
  let i = 0;
  while (i < locatorText.length) {
    const end = findNext(locatorText, i, ',');
    const stop = end < 0 ? locatorText.length : end;
    parts.push(locatorText.substring(i, stop));
    i = stop + 1;
  }
  let replaced = false;
  const out = parts.map((p) => {
    const m = /^([^:(,]+)[:(]/.exec(p);
    if (m && m[1] === name && !replaced) {
      replaced = true;
      return `${name}:${v}`;
    }
    return p;
  });
  if (!replaced) out.push(`${name}:${v}`);
  return out.join(',');
}
