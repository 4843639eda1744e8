import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { canonicalRequest, canonicalUri, computeQsh, sha256Hex, splitRawUrl } from './qsh.ts';
import { decodeJwt, hs256SignatureValid } from './jwt.ts';

interface Vectors {
  secret: string;
  tests: Array<{ name: string; canonicalUrl: string; signedUrl: string }>;
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../shared/fixtures/jira/connect-jwt-signed-urls.json', import.meta.url), 'utf8'),
) as Vectors;

/** The signed URL with its `jwt` parameter removed, byte for byte (no URL normalisation). */
function withoutJwt(signedUrl: string): { url: string; token: string } {
  const { query } = splitRawUrl(signedUrl);
  const parts = query.split('&');
  const jwtPart = parts.find((p) => p.startsWith('jwt='));
  assert.ok(jwtPart, 'vector has a jwt parameter');
  const rest = parts.filter((p) => p !== jwtPart).join('&');
  const q = signedUrl.indexOf('?');
  return { url: `${signedUrl.slice(0, q)}${rest ? `?${rest}` : ''}`, token: jwtPart.slice(4) };
}

void test('all 78 official Atlassian vectors: canonical request, qsh and HS256 signature', () => {
  assert.equal(vectors.tests.length, 78);
  for (const v of vectors.tests) {
    const { url, token } = withoutJwt(v.signedUrl);
    const decoded = decodeJwt(token);
    assert.ok(decoded, v.name);
    // The canonical-request builder reproduces canonicalUrl from the signed URL minus jwt…
    assert.equal(canonicalRequest('GET', url), v.canonicalUrl, `canonical: ${v.name}`);
    // …also when the jwt parameter is still there (it must be ignored)…
    assert.equal(canonicalRequest('GET', v.signedUrl), v.canonicalUrl, `canonical with jwt: ${v.name}`);
    // …and its hash is the qsh Atlassian put in the token.
    assert.equal(sha256Hex(v.canonicalUrl), decoded.claims['qsh'], `qsh: ${v.name}`);
    assert.equal(computeQsh('GET', v.signedUrl), decoded.claims['qsh'], `computeQsh: ${v.name}`);
    assert.equal(hs256SignatureValid(decoded, vectors.secret), true, `signature: ${v.name}`);
    assert.equal(hs256SignatureValid(decoded, `${vectors.secret}x`), false);
  }
});

void test('QSHs of the app calls match the reference (§2.4)', () => {
  const expected: Array<[string, string, string]> = [
    ['POST', '/rest/builds/0.1/bulk', '0947f5bc05f2c4728bc2e3905089951a4aa601772a79268aa983e2ef881b79ff'],
    ['POST', '/rest/deployments/0.1/bulk', 'e50a1fc975925dfc3652c2ea120c1d37f5581e16d5a167a5adbeda3bda7ab589'],
    ['POST', '/rest/api/3/permissions/check', 'f376e8d4bd28bfbf285b9f7344dc08f1fbaa95eb13c4f4decdc9331ac60f6cf1'],
    ['GET', '/rest/api/3/issue/10001', 'a64e7febf4206ef5d4848492f86e2ce66023282b2c51918168c3243053a09675'],
    ['GET', '/rest/api/3/project/10000', 'f4a230c3c0df3c07801b66a043efbd0de8216c6220eb68501571edf57dcbfd33'],
    ['DELETE', '/rest/builds/0.1/bulkByProperties?teamcityServerId=abc-123', '7c0fb552372a78d3def6578a21796a637d1252547ede442b5382918b74503be1'],
    ['POST', '/installed', '4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4'],
  ];
  for (const [m, u, h] of expected) assert.equal(computeQsh(m, u), h, `${m} ${u}`);
});

void test('context path of a baseUrl is stripped; trailing slash and & handled', () => {
  assert.equal(canonicalRequest('post', 'http://127.0.0.1:9/sites/acme/rest/builds/0.1/bulk', '/sites/acme'), 'POST&/rest/builds/0.1/bulk&');
  assert.equal(canonicalUri('/sites/acme', '/sites/acme'), '/');
  assert.equal(canonicalUri('/sites/acmeX/rest', '/sites/acme'), '/sites/acmeX/rest');
  assert.equal(canonicalUri('/a/b/'), '/a/b');
  assert.equal(canonicalUri(''), '/');
  assert.equal(canonicalUri('/x&y'), '/x%26y');
  assert.equal(canonicalRequest('GET', '/p?b=2&a=1&jwt=zzz&a=0'), 'GET&/p&a=0,1&b=2');
});
