// TeamCity dates (reference/teamcity-rest.md §4.1, §2.2): `yyyyMMdd'T'HHmmss±HHMM` (Java `yyyyMMdd'T'HHmmssZ`)
// in the server JVM's time zone, second precision. We never guess a zone: a date without an offset is
// refused. Dates we send in locators are formatted in the server's own offset (learned from
// `server.currentTime`) so that they read like the server's own dates in logs and error messages; TeamCity
// parses any offset, and the `+` must travel as `%2B` (the client URL-encodes every locator).
import { TeamCityProtocolError } from './errors.ts';

// Optional `.SSS` (servers with a custom `rest.defaultDateFormat`) and an optional `:` in the offset are
// accepted; both are rare but cost nothing.
const TC_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?([+-])(\d{2}):?(\d{2})$/;

interface Parsed {
  utcMs: number;
  offsetMinutes: number;
}

function parse(s: string): Parsed | undefined {
  const m = TC_DATE.exec(s.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac, sign, oh, om] = m as unknown as [string, string, string, string, string, string, string, string | undefined, string, string, string];
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(se);
  const offH = Number(oh);
  const offM = Number(om);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || offH > 23 || offM > 59) {
    return undefined;
  }
  const offsetMinutes = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
  const ms = frac === undefined ? 0 : Number(frac.padEnd(3, '0'));
  const local = Date.UTC(Number(y), month - 1, day, hour, minute, second, ms);
  // Date.UTC rolls over (Feb 31 → Mar 3): reject dates that do not exist.
  const check = new Date(local);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return undefined;
  return { utcMs: local - offsetMinutes * 60_000, offsetMinutes };
}

/** Parses a TeamCity date; throws TeamCityProtocolError for anything else (including a missing offset). */
export function parseTcDate(s: string): Date {
  const p = parse(s);
  if (!p) throw new TeamCityProtocolError(`Unexpected TeamCity date '${s.slice(0, 40)}' (expected yyyyMMdd'T'HHmmss±HHMM)`);
  return new Date(p.utcMs);
}

/** Like parseTcDate, but undefined for a missing or unparsable value (for optional fields such as finishDate). */
export function tryParseTcDate(s: string | undefined | null): Date | undefined {
  // Not a string at all (a broken or hostile server sending a number or an object): no date, not a crash.
  if (typeof s !== 'string') return undefined;
  const p = parse(s);
  return p ? new Date(p.utcMs) : undefined;
}

/** The UTC offset (minutes, east positive) a TeamCity date was written in, e.g. `…+0300` → 180. */
export function tcDateOffsetMinutes(s: string): number {
  const p = parse(s);
  if (!p) throw new TeamCityProtocolError(`Unexpected TeamCity date '${s.slice(0, 40)}' (expected yyyyMMdd'T'HHmmss±HHMM)`);
  return p.offsetMinutes;
}

const p2 = (n: number): string => String(n).padStart(2, '0');

/**
 * Formats `d` as TeamCity does, in a fixed UTC offset (minutes east; default UTC): `20250602T120000+0300`.
 * Sub-second precision is dropped (floored), which for `condition:after` widens a window by < 1 s — the
 * safe direction.
 */
export function formatTcDate(d: Date, offsetMinutes = 0): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new RangeError('formatTcDate: invalid Date');
  if (!Number.isInteger(offsetMinutes) || Math.abs(offsetMinutes) > 18 * 60) {
    throw new RangeError(`formatTcDate: offset ${offsetMinutes} minutes is not a valid UTC offset`);
  }
  const secs = Math.floor(t / 1000) * 1000;
  const local = new Date(secs + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return (
    `${local.getUTCFullYear()}${p2(local.getUTCMonth() + 1)}${p2(local.getUTCDate())}T` +
    `${p2(local.getUTCHours())}${p2(local.getUTCMinutes())}${p2(local.getUTCSeconds())}` +
    `${sign}${p2(Math.floor(abs / 60))}${p2(abs % 60)}`
  );
}

// ---------------------------------------------------------------------------------------------------------
// Server clock

/**
 * What we know about a TeamCity server's clock, from `GET /app/rest/server` `currentTime`.
 * `skewMs` = server clock − our clock (positive: the server is ahead). Second precision plus half the round
 * trip, so treat it as ± ~1 s.
 */
export interface ServerClock {
  /** The server's UTC offset in minutes (east positive), for formatting locator dates. */
  offsetMinutes: number;
  skewMs: number;
}

/**
 * Derives the server clock from `server.currentTime`. `requestStartMs`/`requestEndMs` are our clock around the
 * request; the server's reading is assumed to be taken at the midpoint.
 */
export function serverClockFrom(currentTime: string, requestStartMs: number, requestEndMs = requestStartMs): ServerClock {
  const p = parse(currentTime);
  if (!p) throw new TeamCityProtocolError(`Unexpected TeamCity server currentTime '${currentTime.slice(0, 40)}'`);
  const ourMid = (requestStartMs + requestEndMs) / 2;
  // currentTime is truncated to the second: its true value is on average 500 ms later.
  return { offsetMinutes: p.offsetMinutes, skewMs: Math.round(p.utcMs + 500 - ourMid) };
}

/** Our instant `local` (default: now) expressed on the server's clock. */
export function toServerTime(clock: ServerClock, local: Date = new Date()): Date {
  return new Date(local.getTime() + clock.skewMs);
}

/** A server-clock instant expressed on our clock. */
export function fromServerTime(clock: ServerClock, server: Date): Date {
  return new Date(server.getTime() - clock.skewMs);
}

/** Formats a server-clock instant in the server's own offset, for a locator. */
export function formatForServer(clock: ServerClock, serverInstant: Date): string {
  return formatTcDate(serverInstant, clock.offsetMinutes);
}
