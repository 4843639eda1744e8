// Minimal, independent JWT code for the simulator: HS256 sign/verify and RS256 sign (node:crypto).
// Kept separate from the app on purpose so that the simulator can prove the app wrong.
import { createHmac, createSign, timingSafeEqual, type KeyObject } from 'node:crypto';

export type JwtClaims = Record<string, unknown>;
export interface JwtHeader {
  alg?: unknown;
  typ?: unknown;
  kid?: unknown;
  [k: string]: unknown;
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function signHs256(claims: JwtClaims, secret: string, header: JwtHeader = {}): string {
  const input = `${b64urlJson({ typ: 'JWT', alg: 'HS256', ...header })}.${b64urlJson(claims)}`;
  const sig = createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

export function signRs256(claims: JwtClaims, privateKey: KeyObject, kid: string): string {
  const input = `${b64urlJson({ kid, typ: 'JWT', alg: 'RS256' })}.${b64urlJson(claims)}`;
  const sig = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
  return `${input}.${sig}`;
}

/** An unsigned token (`alg: none`), for negative tests. */
export function signNone(claims: JwtClaims): string {
  return `${b64urlJson({ typ: 'JWT', alg: 'none' })}.${b64urlJson(claims)}.`;
}

export interface DecodedJwt {
  header: JwtHeader;
  claims: JwtClaims;
  signingInput: string;
  signature: string;
}

/** Decodes without verifying; null when the token is not three base64url JSON parts. */
export function decodeJwt(token: string): DecodedJwt | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [h, p, s] = parts as [string, string, string];
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as unknown;
    if (typeof header !== 'object' || header === null || Array.isArray(header)) return null;
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return null;
    return { header: header as JwtHeader, claims: claims as JwtClaims, signingInput: `${h}.${p}`, signature: s };
  } catch {
    return null;
  }
}

/** Constant-time HS256 signature check. */
export function hs256SignatureValid(decoded: DecodedJwt, secret: string): boolean {
  const expected = createHmac('sha256', secret).update(decoded.signingInput).digest();
  let actual: Buffer;
  try {
    actual = Buffer.from(decoded.signature, 'base64url');
  } catch {
    return false;
  }
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Extracts the token from `Authorization: JWT <token>`; undefined when absent or another scheme. */
export function tokenFromAuthorization(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^JWT\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}
