// Dates, error bodies, XML rendering and URL encoding as TeamCity produces them (reference §1.5, §4.1, §5.1).
import { LocatorError } from './locator.ts';

const p2 = (n: number): string => String(n).padStart(2, '0');

/** `yyyyMMdd'T'HHmmss±HHMM` in the server's time zone (fixed UTC offset), second precision. */
export function formatTcDate(ms: number, utcOffsetMinutes: number): string {
  const d = new Date(ms + utcOffsetMinutes * 60_000);
  const sign = utcOffsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(utcOffsetMinutes);
  return (
    `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}T` +
    `${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}` +
    `${sign}${p2(Math.floor(abs / 60))}${p2(abs % 60)}`
  );
}

const TC_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{3}))?([+-])(\d{2}):?(\d{2})$/;
const TC_DATE_Z = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{3}))?Z$/;

function fromParts(m: RegExpExecArray, offsetMin: number): number {
  const [, y, mo, d, h, mi, s, ms] = m;
  return Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, ms ? Number(ms) : 0) - offsetMin * 60_000;
}

function badDate(v: string): LocatorError {
  if (v.includes(' ')) {
    return new LocatorError(`Invalid date/time string '${v}'. Note that '+' should be escaped in URL as '%2B'.`);
  }
  return new LocatorError(`Could not parse date from value '${v}'`);
}

/** Strict legacy parser (`sinceDate`): `yyyyMMdd'T'HHmmssZ` only. */
export function parseLegacyTcDate(v: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})()([+-])(\d{2})(\d{2})$/.exec(v);
  if (!m) throw badDate(v);
  const off = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10]));
  return fromParts(m, off);
}

/**
 * Time values of `startDate:(date:…)` etc. (TimeWithPrecision): `yyyyMMdd'T'HHmmssZ`, `…SSSZ`, ISO-8601,
 * or relative `-4w2d5h30m5s` (relative to `now`).
 */
export function parseTcTime(v: string, now: number): number {
  let m = TC_DATE.exec(v);
  if (m) {
    const off = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10]));
    return fromParts(m, off);
  }
  m = TC_DATE_Z.exec(v);
  if (m) return fromParts(m, 0);
  const rel = /^([+-])((?:\d+[wdhms])+)$/.exec(v);
  if (rel) {
    const unit: Record<string, number> = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
    let total = 0;
    for (const part of rel[2]!.matchAll(/(\d+)([wdhms])/g)) total += Number(part[1]) * unit[part[2]!]!;
    return now + (rel[1] === '-' ? -total : total);
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v)) {
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return t;
  }
  throw badDate(v);
}

// ---------------------------------------------------------------------------------------------------------
// Errors

export type ErrorFormat = 'text2023' | 'structured2025';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly exceptionClass: string,
  ) {
    super(message);
  }
}

export const notFound = (msg: string): HttpError =>
  new HttpError(404, msg, 'jetbrains.buildServer.server.rest.errors.NotFoundException');
export const badRequest = (msg: string): HttpError =>
  new HttpError(400, msg, 'jetbrains.buildServer.server.rest.errors.BadRequestException');
export const forbidden = (msg: string): HttpError =>
  new HttpError(403, msg, 'jetbrains.buildServer.server.rest.errors.AuthorizationFailedException');

const REASON: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const HINT: Record<number, string> = {
  400: 'Invalid request. Check the request URL and data are correct.',
  403: 'Access denied. Check the user has enough permissions to perform the operation.',
  404: 'Could not find the entity requested. Check the reference is correct and the user has permissions to access the entity.',
  406: "Make sure you have supplied correct 'Accept' header.",
};

export function reasonPhrase(status: number): string {
  return REASON[status] ?? 'Error';
}

export interface ErrorBody {
  contentType: string;
  body: string;
}

/**
 * REST-plugin error body. 2023 text format:
 *   `Responding with error, status code: 404 (Not Found).\nDetails: <class>: <message>\n<hint>\n`
 * 2025+ structured format, following Accept: JSON `{"errors":[{additionalMessage,message,stackTrace,statusText}]}`
 * or XML `<errors><error><message/>…</error></errors>` (fixtures errors/*).
 */
export function renderError(
  status: number,
  message: string,
  exceptionClass: string,
  format: ErrorFormat,
  wantJson: boolean,
): ErrorBody {
  const statusText = `Responding with error, status code: ${status} (${reasonPhrase(status)}).`;
  const hint = HINT[status] ?? 'Error has occurred during request processing.';
  const details = `${exceptionClass}: ${message}`;
  if (format === 'text2023') {
    return { contentType: 'text/plain;charset=UTF-8', body: `${statusText}\nDetails: ${details}\n${hint}\n` };
  }
  // In the structured format `message` is the user-facing message (the hint for errors without one, e.g. 406).
  const msg = status === 406 ? hint : message;
  if (wantJson) {
    const body = JSON.stringify(
      { errors: [{ additionalMessage: details, message: msg, stackTrace: null, statusText }] },
      null,
      2,
    );
    return { contentType: 'application/json', body };
  }
  const body =
    `<errors>\n<error>\n<message>${xmlEscape(msg)}</message>\n` +
    `<additionalMessage>${xmlEscape(details)}</additionalMessage>\n` +
    `<statusText>${xmlEscape(statusText)}</statusText>\n</error>\n</errors>`;
  return { contentType: 'application/xml', body };
}

/** Exact 401 body of the TeamCity web layer (fixture errors/401-unauthenticated-response-2024.http). */
export const UNAUTHORIZED_BODY = 'Authentication required\nTo login manually go to "/login.html" page\n';

export const LOGIN_PAGE_HTML =
  '<!DOCTYPE html>\n<html>\n<head>\n<title>Log in to TeamCity &mdash; TeamCity</title>\n</head>\n' +
  '<body class="loginPage">\n<form action="/loginSubmit.html" method="post" id="loginForm">\n' +
  '<input type="text" name="username" id="username"/>\n<input type="password" name="password" id="password"/>\n' +
  '<input type="submit" name="submitLogin" value="Log in"/>\n</form>\n</body>\n</html>\n';

// ---------------------------------------------------------------------------------------------------------
// XML (the default representation when JSON is not asked for)

export function xmlEscape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\n/g, '&#xA;')
    .replace(/\r/g, '&#xD;');
}

/** Properties TeamCity renders as child elements with text content rather than attributes. */
const TEXT_ELEMENTS = new Set(['statusText', 'comment', 'text', 'checkout-rules', 'description']);

/**
 * Converts the JSON form to TeamCity-style XML: scalars → attributes, objects → child elements, arrays →
 * repeated child elements named after the property (JAXB naming, as JSON property names mirror it).
 */
export function toXml(rootName: string, value: unknown): string {
  return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>${element(rootName, value)}`;
}

function scalar(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v) ?? '';
}

function element(name: string, value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return `<${name}>${xmlEscape(scalar(value))}</${name}>`;
  }
  const attrs: string[] = [];
  const children: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) children.push(element(k, item));
    } else if (typeof v === 'object') {
      children.push(element(k, v));
    } else if (TEXT_ELEMENTS.has(k)) {
      children.push(`<${k}>${xmlEscape(scalar(v))}</${k}>`);
    } else {
      attrs.push(` ${k}="${xmlEscape(scalar(v))}"`);
    }
  }
  return children.length === 0 ? `<${name}${attrs.join('')}/>` : `<${name}${attrs.join('')}>${children.join('')}</${name}>`;
}

// ---------------------------------------------------------------------------------------------------------
// URLs

/** TCR Util.humanReadableUrlParamValue: `$ ( ) : ,` stay raw, everything else is %-encoded. */
export function humanReadableEncode(v: string): string {
  return encodeURIComponent(v).replace(/%24|%28|%29|%3A|%2C|[()]/gi, (m) =>
    m.length === 1 ? m : decodeURIComponent(m),
  );
}
