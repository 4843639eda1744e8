// Atlassian's public keys for signed install callbacks (reference §2.2): `GET <keys URL>/<kid>`
// returns a PEM. Keys rotate with a new kid each time, so a key is cached by kid for good.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { request, type Dispatcher } from 'undici';

// A kid goes into a URL path: only characters that cannot change the path are accepted.
const SAFE_KID = /^[A-Za-z0-9._-]{1,200}$/;
const MAX_CACHED = 64;

export class InstallKeyError extends Error {
  override name = 'InstallKeyError';
}

export class InstallKeys {
  private readonly cache = new Map<string, KeyObject>();
  private readonly inflight = new Map<string, Promise<KeyObject>>();

  constructor(
    private readonly keysUrl: string,
    private readonly dispatcher: Dispatcher,
    private readonly timeoutMs = 5_000,
  ) {}

  async get(kid: string): Promise<KeyObject> {
    if (!SAFE_KID.test(kid)) throw new InstallKeyError('kid has unexpected characters');
    const cached = this.cache.get(kid);
    if (cached) return cached;
    // Concurrent installs with one kid share one fetch.
    let pending = this.inflight.get(kid);
    if (!pending) {
      pending = this.fetch(kid).finally(() => this.inflight.delete(kid));
      this.inflight.set(kid, pending);
    }
    return pending;
  }

  private async fetch(kid: string): Promise<KeyObject> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.keysUrl.replace(/\/+$/, '')}/${kid}`, {
        dispatcher: this.dispatcher,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw new InstallKeyError(`install key server unreachable: ${(err as Error).message}`);
    }
    const body = await res.body.text().catch(() => '');
    if (res.statusCode !== 200) throw new InstallKeyError(`install key server answered ${res.statusCode} for kid ${kid}`);
    let key: KeyObject;
    try {
      key = createPublicKey(body.trim());
    } catch {
      throw new InstallKeyError(`install key server returned no usable public key for kid ${kid}`);
    }
    if (key.asymmetricKeyType !== 'rsa') throw new InstallKeyError(`install key for kid ${kid} is not an RSA key`);
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(kid, key);
    return key;
  }
}
