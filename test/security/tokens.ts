// Hand-made JWTs for forgery tests: any header, any claims, any signature — nothing here trusts jose,
// so the app's verifier is tested against what an attacker can actually put on the wire.
import { createHmac } from 'node:crypto';

export const b64u = (v: string | Buffer | object): string =>
  Buffer.from(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v)).toString('base64url');

/** header.payload.signature from raw parts (objects are JSON-encoded, strings used as the raw JSON text). */
export function rawToken(header: object | string, claims: object | string, signature: string | ((input: string) => string) = ''): string {
  const input = `${b64u(header)}.${b64u(claims)}`;
  return `${input}.${typeof signature === 'function' ? signature(input) : signature}`;
}

export const hmac = (alg: 'sha256' | 'sha384' | 'sha512', key: string | Buffer) => (input: string) => createHmac(alg, key).update(input).digest('base64url');

/** A correctly signed HS256 token (the shape Jira sends) with any claims. */
export function hs256(claims: object | string, secret: string, header: object | string = { alg: 'HS256', typ: 'JWT' }): string {
  return rawToken(header, claims, hmac('sha256', secret));
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
