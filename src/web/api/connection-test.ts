// The TeamCity connection test run before a server is saved (product.md complaint 9): the URL must be
// allowed (https, public address, unless allow-listed), answer as TeamCity's REST API, accept the
// credentials, and the account should see builds. Every failure becomes one clear reason an admin can
// act on; nothing of the credentials or of the server's response body is echoed.
import type { Dispatcher } from 'undici';
import type { Logger } from '../../log.ts';
import { OutboundBlockedError } from '../../net/outbound.ts';
import { TeamCityClient, type TeamCityAuth, type TeamCityClientOptions } from '../../teamcity/client.ts';
import {
  TeamCityAuthError,
  TeamCityError,
  TeamCityForbiddenError,
  TeamCityHttpError,
  TeamCityNotFoundError,
  TeamCityProtocolError,
  TeamCityUnavailableError,
} from '../../teamcity/errors.ts';

export interface ConnectionTestDeps {
  dispatcher: Dispatcher;
  log: Logger;
  teamcity?: Partial<TeamCityClientOptions>;
}

export type ConnectionErrorCode =
  | 'invalid_url'
  | 'url_blocked'
  | 'invalid_credentials_format'
  | 'unreachable'
  | 'dns_failed'
  | 'timeout'
  | 'tls_error'
  | 'teamcity_unauthorized'
  | 'teamcity_forbidden'
  | 'not_teamcity'
  | 'teamcity_error';

export interface ConnectionFailure {
  ok: false;
  error: { code: ConnectionErrorCode; message: string; teamcityStatus?: number };
}

export interface ConnectionSuccess {
  ok: true;
  /** TeamCity's version string, e.g. "2025.11.2 (build 197242)". */
  version: string;
  /** The account the credentials belong to. */
  user: { username?: string; name?: string };
  /** The canonical base URL the client will use (no trailing slash). */
  url: string;
  serverInternalId?: string;
  /** Things that work but deserve attention (e.g. the account sees no builds). */
  warnings: string[];
}

export type ConnectionResult = ConnectionSuccess | ConnectionFailure;

/** What the service account needs (docs: least privilege). */
export const REQUIRED_PERMISSIONS_TEXT =
  'The account needs only the "View project" permission (a project viewer role) on the projects to track; ' +
  '"View build runtime parameters and data", "View users" and any write permission are not required.';

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL)/;

function codesOf(err: unknown): string[] {
  const out: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 6 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
    const msg = (e as { message?: unknown }).message;
    if (typeof msg === 'string' && /SSL|TLS|certificate|wrong version number/i.test(msg)) out.push('ERR_TLS_MESSAGE');
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

function fail(code: ConnectionErrorCode, message: string, teamcityStatus?: number): ConnectionFailure {
  return { ok: false, error: teamcityStatus === undefined ? { code, message } : { code, message, teamcityStatus } };
}

/** Turns any error of a TeamCity call into the reason shown to the admin. */
export function describeConnectionError(err: unknown, host: string): ConnectionFailure {
  if (err instanceof OutboundBlockedError) {
    if (err.reason === 'invalid-url' || err.reason === 'scheme' || err.reason === 'userinfo') return fail('invalid_url', err.message);
    if (err.reason === 'no-address') return fail('dns_failed', `${host} did not resolve to any address`);
    return fail(
      'url_blocked',
      `${err.message}. TeamCity servers must be reached over https at a public address; an operator can allow an internal host with OUTBOUND_ALLOW_HOSTS.`,
    );
  }
  if (err instanceof TeamCityAuthError) {
    return fail('teamcity_unauthorized', 'TeamCity rejected the credentials (401): check the username and password, or that the access token is valid and not revoked or expired.', 401);
  }
  if (err instanceof TeamCityForbiddenError) {
    return fail('teamcity_forbidden', `TeamCity accepted the credentials but refused access (403): ${err.serverMessage}. ${REQUIRED_PERMISSIONS_TEXT}`, 403);
  }
  if (err instanceof TeamCityNotFoundError) {
    return fail('not_teamcity', `No TeamCity REST API at this URL (404 for /app/rest/server): check the server URL, including any context path such as /teamcity.`, 404);
  }
  if (err instanceof TeamCityProtocolError) {
    return fail('not_teamcity', `This does not look like TeamCity's REST API: ${err.message}`, err.status);
  }
  if (err instanceof TeamCityUnavailableError) {
    const codes = codesOf(err);
    if (codes.some((c) => TLS_CODES.test(c))) {
      return fail('tls_error', `TLS connection to ${host} failed (certificate not trusted, expired or for another name, or the server does not speak https on this port).`);
    }
    if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) return fail('dns_failed', `The host name ${host} could not be resolved.`);
    if (codes.includes('ECONNREFUSED')) return fail('unreachable', `Nothing is listening at ${host} (connection refused): check the host name and port.`);
    if (/timeout/i.test(err.message) || codes.some((c) => /TIMEOUT/.test(c))) return fail('timeout', `${host} did not answer in time: check the URL and that the server is reachable from the internet.`);
    if (err.status !== undefined) return fail('teamcity_error', `TeamCity answered with an error (${err.status}) after several attempts; try again later.`, err.status);
    return fail('unreachable', `Could not connect to ${host}: ${err.message}`);
  }
  if (err instanceof TeamCityHttpError) return fail('teamcity_error', `TeamCity answered ${err.status}: ${err.serverMessage}`, err.status);
  if (err instanceof TeamCityError) return fail('teamcity_error', err.message);
  if (err instanceof RangeError || err instanceof TypeError) return fail('invalid_credentials_format', err.message);
  return fail('unreachable', `Could not connect to ${host}.`);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the server';
  }
}

/**
 * GET /app/rest/server, GET /app/rest/users/current and one builds page (count 1): the same client,
 * guarded dispatcher and endpoints the poller uses.
 */
export async function testTeamCityConnection(deps: ConnectionTestDeps, url: string, auth: TeamCityAuth): Promise<ConnectionResult> {
  const host = hostOf(url);
  let client: TeamCityClient;
  try {
    client = new TeamCityClient({
      baseUrl: url,
      auth,
      dispatcher: deps.dispatcher,
      log: deps.log,
      timeoutMs: 10_000,
      maxAttempts: 2,
      retryBaseMs: 200,
      retryMaxMs: 1_000,
      ...deps.teamcity,
    });
  } catch (err) {
    if (err instanceof OutboundBlockedError) return describeConnectionError(err, host);
    if (err instanceof RangeError) {
      const isUrl = /URL/.test(err.message);
      return fail(isUrl ? 'invalid_url' : 'invalid_credentials_format', err.message);
    }
    throw err;
  }
  try {
    const server = await client.getServer();
    if (typeof server.version !== 'string' && typeof server.versionMajor !== 'number') {
      return fail('not_teamcity', 'The URL answered JSON, but not the TeamCity server description: check the server URL.');
    }
    const user = await client.getCurrentUser();
    const warnings: string[] = [];
    let sees = 0;
    for await (const page of client.builds('defaultFilter:false,count:1', 'count,build(id)')) {
      sees += page.items.length;
      break;
    }
    if (sees === 0) warnings.push(`The account sees no builds yet. ${REQUIRED_PERMISSIONS_TEXT}`);
    const result: ConnectionSuccess = {
      ok: true,
      version: server.version ?? `${server.versionMajor ?? '?'}.${server.versionMinor ?? '?'}`,
      user: { ...(user.username !== undefined ? { username: user.username } : {}), ...(user.name !== undefined ? { name: user.name } : {}) },
      url: client.baseUrl,
      warnings,
    };
    if (server.internalId) result.serverInternalId = server.internalId;
    return result;
  } catch (err) {
    const failure = describeConnectionError(err, host);
    deps.log.info({ tcHost: host, code: failure.error.code, teamcityStatus: failure.error.teamcityStatus }, 'TeamCity connection test failed');
    return failure;
  }
}
