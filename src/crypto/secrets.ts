// Envelope encryption of every stored secret (TeamCity passwords/tokens, Jira shared secrets) with
// the AWS Encryption SDK. Each ciphertext carries an encryption context {tenant, purpose, record};
// decrypt demands the same context, so a ciphertext copied to another row, tenant or purpose fails.
// Keys: a local AES keyring file by default, AWS KMS when KMS_KEY_ARN is set.
import { stat } from 'node:fs/promises';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  KmsKeyringNode,
  MultiKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  type KeyringNode,
} from '@aws-crypto/client-node';
import { registerSecret } from '../log.ts';
import { createKeyring, KeyringError, readKeyring, type KeyringFile } from './keyring.ts';

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

const KEY_NAMESPACE = 'teamcity-jira/local';

/** How often a running process re-reads the keyring file to pick up a new primary key. */
export const KEYRING_RECHECK_MS = 5_000;

export type SecretPurpose = 'jira-shared-secret' | 'teamcity-credential';

export interface SecretContext {
  tenant: string;
  purpose: SecretPurpose;
  record: string;
}

export class SecretDecryptError extends Error {
  override name = 'SecretDecryptError';
}

/** Where keys come from. `keyId` names the key a ciphertext's data key was wrapped with. */
interface KeyProvider {
  encryptKeyring(): Promise<KeyringNode>;
  decryptKeyring(): Promise<KeyringNode>;
  primaryKeyId(): Promise<string>;
  /** Does this wrapped-data-key provider info belong to the primary key? */
  isPrimary(providerInfo: string): Promise<boolean>;
}

/** Local keyring file; re-read when it changes on disk so running processes pick up a rotation. */
class LocalKeyProvider implements KeyProvider {
  private cached?: { mtimeMs: number; size: number; keyring: KeyringFile };
  private checkedAt = 0;

  constructor(
    private readonly file: string,
    private readonly recheckMs: number,
  ) {}

  private async keyring(): Promise<KeyringFile> {
    const now = Date.now();
    if (this.cached && now - this.checkedAt < this.recheckMs) return this.cached.keyring;
    this.checkedAt = now;
    const st = await stat(this.file).catch(() => undefined);
    if (!st) {
      if (this.cached) return this.cached.keyring; // a rename in progress; keep what we have
      throw new KeyringError(`keyring ${this.file} does not exist`);
    }
    if (this.cached && st.mtimeMs === this.cached.mtimeMs && st.size === this.cached.size) return this.cached.keyring;
    const keyring = await readKeyring(this.file);
    if (!keyring) throw new KeyringError(`keyring ${this.file} does not exist`);
    this.cached = { mtimeMs: st.mtimeMs, size: st.size, keyring };
    return keyring;
  }

  // The raw AES keyring zeroes the key buffer it is given, so each keyring gets a fresh copy.
  private static ring(key: KeyringFile['keys'][number]): RawAesKeyringNode {
    return new RawAesKeyringNode({
      keyName: key.name,
      keyNamespace: KEY_NAMESPACE,
      unencryptedMasterKey: new Uint8Array(Buffer.from(key.material, 'base64')),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  }

  async encryptKeyring(): Promise<KeyringNode> {
    const k = await this.keyring();
    return LocalKeyProvider.ring(k.keys.find((x) => x.name === k.primary)!);
  }

  async decryptKeyring(): Promise<KeyringNode> {
    const k = await this.keyring();
    return new MultiKeyringNode({ children: k.keys.map((x) => LocalKeyProvider.ring(x)) });
  }

  async primaryKeyId(): Promise<string> {
    return (await this.keyring()).primary;
  }

  async isPrimary(providerInfo: string): Promise<boolean> {
    return providerInfo.startsWith(await this.primaryKeyId());
  }
}

/**
 * AWS KMS: the first ARN encrypts, the rest (older keys after a change of key) only decrypt. Yearly
 * rotation of one key's material is done by KMS itself and needs nothing from us.
 */
class KmsKeyProvider implements KeyProvider {
  constructor(private readonly arns: string[]) {}
  encryptKeyring(): Promise<KeyringNode> {
    return Promise.resolve(new KmsKeyringNode({ generatorKeyId: this.arns[0]! }));
  }
  decryptKeyring(): Promise<KeyringNode> {
    return Promise.resolve(new KmsKeyringNode({ keyIds: this.arns }));
  }
  primaryKeyId(): Promise<string> {
    return Promise.resolve(this.arns[0]!);
  }
  isPrimary(providerInfo: string): Promise<boolean> {
    return Promise.resolve(providerInfo === this.arns[0]);
  }
}

function contextOf(ctx: SecretContext): Record<string, string> {
  return { tenant: ctx.tenant, purpose: ctx.purpose, record: ctx.record };
}

export class Secrets {
  private constructor(private readonly keys: KeyProvider) {}

  static kms(arns: string[]): Secrets {
    if (arns.length === 0) throw new KeyringError('KMS_KEY_ARN names no key');
    return new Secrets(new KmsKeyProvider(arns));
  }

  /**
   * Opens the local keyring, creating it (0600) if it does not exist — but only when no ciphertext
   * exists yet: a new key would make every stored secret undecryptable.
   */
  static async local(file: string, opts: { secretsExist: () => Promise<boolean>; recheckMs?: number }): Promise<Secrets> {
    const existing = await readKeyring(file);
    if (!existing) {
      if (await opts.secretsExist()) {
        throw new KeyringError(
          `keyring ${file} is missing but the database holds encrypted secrets; restore the keyring file (or set KEYRING_FILE to it) — a new key could not decrypt them`,
        );
      }
      await createKeyring(file);
    }
    return new Secrets(new LocalKeyProvider(file, opts.recheckMs ?? KEYRING_RECHECK_MS));
  }

  async encrypt(plaintext: string, ctx: SecretContext): Promise<Buffer> {
    const { result } = await encrypt(await this.keys.encryptKeyring(), Buffer.from(plaintext, 'utf8'), {
      encryptionContext: contextOf(ctx),
      // Key-committing AES-256-GCM without the ECDSA message signature: the signature guards against
      // a reader who may decrypt but must not author messages — here the same service does both, and
      // verifying a P-384 signature on every poll was 38% of an idle worker's CPU (docs/performance.md).
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
    });
    return Buffer.from(result);
  }

  async decrypt(ciphertext: Buffer, ctx: SecretContext): Promise<string> {
    const { plaintext } = await this.open(ciphertext, ctx);
    return plaintext;
  }

  /** Decrypts and says whether the ciphertext is under the primary key (rotate-keys uses this). */
  async open(ciphertext: Buffer, ctx: SecretContext): Promise<{ plaintext: string; underPrimary: boolean }> {
    let out: Awaited<ReturnType<typeof decrypt>>;
    try {
      out = await decrypt(await this.keys.decryptKeyring(), ciphertext);
    } catch (err) {
      throw new SecretDecryptError(`cannot decrypt ${ctx.purpose} of record ${ctx.record}: ${(err as Error).message}`);
    }
    // The context is authenticated with the message; it must name exactly this tenant, purpose and record.
    const got = out.messageHeader.encryptionContext;
    const want = contextOf(ctx);
    const keys = Object.keys(got).filter((k) => !k.startsWith('aws-crypto-'));
    if (keys.length !== 3 || keys.some((k) => got[k] !== want[k])) {
      throw new SecretDecryptError(`encryption context mismatch for ${ctx.purpose} of record ${ctx.record}`);
    }
    const plaintext = Buffer.from(out.plaintext).toString('utf8');
    registerSecret(plaintext);
    let underPrimary = false;
    for (const edk of out.messageHeader.encryptedDataKeys) if (await this.keys.isPrimary(edk.providerInfo)) underPrimary = true;
    return { plaintext, underPrimary };
  }

  primaryKeyId(): Promise<string> {
    return this.keys.primaryKeyId();
  }
}
