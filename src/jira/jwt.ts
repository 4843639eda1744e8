// JWTs between the app and Jira, with jose: HS256 request tokens we sign (reference §2.3), HS256
// tokens Jira signs for us (§2.5) and RS256 install tokens (§2.2). Algorithms are pinned per use, so
// `none`, RS256-with-a-shared-secret and other algorithm confusion are refused by construction.
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWTPayload, type KeyObject } from 'jose';
import { qsh } from './qsh.ts';

/** Seconds of clock difference tolerated on exp/iat/nbf. */
export const CLOCK_SKEW_SECONDS = 30;
/** Lifetime of the tokens we sign (ACE default, reference §2.3). */
export const REQUEST_TOKEN_SECONDS = 180;

export class JwtError extends Error {
  override name = 'JwtError';
}

export interface JiraClaims extends JWTPayload {
  qsh?: string;
  context?: unknown;
}

function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/** A per-request token for a call to Jira: iss = app key, qsh of exactly this method and URL. */
export async function signRequestToken(opts: {
  appKey: string;
  sharedSecret: string;
  method: string;
  /** Path and query as sent, relative to the site's base URL (its context path already removed). */
  pathAndQuery: string;
  nowSeconds?: number;
}): Promise<string> {
  const iat = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ qsh: qsh(opts.method, opts.pathAndQuery) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(opts.appKey)
    .setIssuedAt(iat)
    .setExpirationTime(iat + REQUEST_TOKEN_SECONDS)
    .sign(secretKey(opts.sharedSecret));
}

/** Header and claims without verification, only to find which key to verify with. */
export function peek(token: string): { alg?: string; kid?: string; claims: JiraClaims } {
  try {
    const header = decodeProtectedHeader(token);
    return { alg: header.alg, kid: header.kid, claims: decodeJwt(token) };
  } catch {
    throw new JwtError('malformed token');
  }
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim} invalid`;
  return 'invalid token';
}

/** HS256 with a tenant's shared secret (jose compares signatures in constant time). */
export async function verifyHs256(token: string, sharedSecret: string, currentDate?: Date): Promise<JiraClaims> {
  try {
    const { payload } = await jwtVerify<JiraClaims>(token, secretKey(sharedSecret), {
      algorithms: ['HS256'],
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['iss', 'exp', 'qsh'],
      ...(currentDate ? { currentDate } : {}),
    });
    return payload;
  } catch (err) {
    throw new JwtError(describe(err));
  }
}

/** RS256 install token signed by Atlassian; `aud` must contain our base URL. */
export async function verifyRs256(token: string, key: KeyObject, audience: string): Promise<JiraClaims> {
  try {
    const { payload } = await jwtVerify<JiraClaims>(token, key, {
      algorithms: ['RS256'],
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['iss', 'exp', 'qsh', 'aud'],
    });
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    const want = audience.replace(/\/+$/, '');
    if (!aud.some((a) => typeof a === 'string' && a.replace(/\/+$/, '') === want)) throw new JwtError('claim aud invalid');
    return payload;
  } catch (err) {
    throw err instanceof JwtError ? err : new JwtError(describe(err));
  }
}
