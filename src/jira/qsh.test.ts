// QSH against Atlassian's 78 official interoperability vectors, and the HS256 signature of each
// vector's token with our signing code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeJwt } from 'jose';
import { JwtError, signRequestToken, verifyHs256 } from './jwt.ts';
import { canonicalRequest, qsh } from './qsh.ts';

interface Vectors {
  secret: string;
  tests: { name: string; canonicalUrl: string; signedUrl: string }[];
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../shared/fixtures/jira/connect-jwt-signed-urls.json', import.meta.url), 'utf8').replace(/^\s*\/\/.*$/gm, ''),
) as Vectors;

test('there are 78 official vectors', () => {
  assert.equal(vectors.tests.length, 78);
});

test('canonical request and qsh match every official vector', () => {
  for (const v of vectors.tests) {
    const url = new URL(v.signedUrl);
    const token = url.searchParams.get('jwt')!;
    // The raw URL as a request line would carry it (the jwt parameter is ignored by canonicalisation).
    const raw = v.signedUrl.replace(/^https?:\/\/[^/]+/, '');
    assert.equal(canonicalRequest('GET', raw), v.canonicalUrl, v.name);
    assert.equal(qsh('GET', raw), (decodeJwt(token) as { qsh: string }).qsh, v.name);
  }
});

test('our HS256 verifier accepts every official token, and rejects it with another secret', async () => {
  for (const v of vectors.tests) {
    const token = new URL(v.signedUrl).searchParams.get('jwt')!;
    const claims = decodeJwt(token);
    const at = new Date((claims.iat ?? 0) * 1000);
    const verified = await verifyHs256(token, vectors.secret, at);
    assert.equal(verified.qsh, qsh('GET', v.signedUrl), v.name);
    await assert.rejects(verifyHs256(token, `${vectors.secret}x`, at), JwtError);
  }
});

test('our request tokens carry iss, iat, exp = iat + 180 and the qsh of the request', async () => {
  const token = await signRequestToken({ appKey: 'my-app', sharedSecret: 's3cret-shared', method: 'delete', pathAndQuery: '/rest/builds/0.1/bulkByProperties?teamcityServerId=abc-123', nowSeconds: 1_800_000_000 });
  const claims = await verifyHs256(token, 's3cret-shared', new Date(1_800_000_010_000));
  assert.deepEqual(claims, { iss: 'my-app', iat: 1_800_000_000, exp: 1_800_000_180, qsh: '7c0fb552372a78d3def6578a21796a637d1252547ede442b5382918b74503be1' });
  await assert.rejects(verifyHs256(token, 's3cret-shared', new Date(1_800_000_300_000)), /token expired/);
});

test('the computed QSHs quoted in the reference', () => {
  assert.equal(qsh('POST', '/rest/builds/0.1/bulk'), '0947f5bc05f2c4728bc2e3905089951a4aa601772a79268aa983e2ef881b79ff');
  assert.equal(qsh('POST', '/rest/deployments/0.1/bulk'), 'e50a1fc975925dfc3652c2ea120c1d37f5581e16d5a167a5adbeda3bda7ab589');
  assert.equal(qsh('POST', '/rest/api/3/permissions/check'), 'f376e8d4bd28bfbf285b9f7344dc08f1fbaa95eb13c4f4decdc9331ac60f6cf1');
  assert.equal(qsh('GET', '/rest/api/3/issue/10001'), 'a64e7febf4206ef5d4848492f86e2ce66023282b2c51918168c3243053a09675');
  assert.equal(qsh('DELETE', '/rest/builds/0.1/bulkByProperties?teamcityServerId=abc-123'), '7c0fb552372a78d3def6578a21796a637d1252547ede442b5382918b74503be1');
  // Relative to the app's base URL: the context path is stripped.
  assert.equal(qsh('POST', '/app/lifecycle/installed', '/app'), qsh('POST', '/lifecycle/installed'));
  assert.equal(canonicalRequest('POST', '/installed'), 'POST&/installed&');
  assert.equal(qsh('POST', '/installed'), '4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4');
});
