// The local keyring file: named AES-256 keys, one of them primary (used to encrypt); the others are
// kept to decrypt what they encrypted until `rotate-keys` has re-encrypted everything. Written
// atomically with mode 0600. A missing or unreadable file is never silently replaced while
// ciphertexts exist (see secrets.ts).
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

export class KeyringError extends Error {
  override name = 'KeyringError';
}

// Equal-length names: the SDK matches a wrapped key to its keyring by name *prefix*, so no name may
// be a prefix of another (as "k1" is of "k10").
const KEY_NAME = /^key-\d{8}T\d{6}Z-[0-9a-f]{8}$/;

const keyringSchema = z.object({
  version: z.literal(1),
  primary: z.string().regex(KEY_NAME),
  keys: z
    .array(
      z.object({
        name: z.string().regex(KEY_NAME),
        createdAt: z.string(),
        // base64 of 32 random bytes
        material: z.string().refine((s) => Buffer.from(s, 'base64').length === 32, 'expected 32 bytes of base64'),
      }),
    )
    .min(1),
});

export type KeyringFile = z.infer<typeof keyringSchema>;

export function newKeyName(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `key-${stamp}-${randomBytes(4).toString('hex')}`;
}

function newKey(): KeyringFile['keys'][number] {
  return { name: newKeyName(), createdAt: new Date().toISOString(), material: randomBytes(32).toString('base64') };
}

export function parseKeyring(text: string, file: string): KeyringFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyringError(`keyring ${file} is not valid JSON; restore it from backup`);
  }
  const parsed = keyringSchema.safeParse(json);
  if (!parsed.success) throw new KeyringError(`keyring ${file} is malformed (${parsed.error.issues[0]?.message ?? 'invalid'}); restore it from backup`);
  if (!parsed.data.keys.some((k) => k.name === parsed.data.primary)) throw new KeyringError(`keyring ${file} names a primary key it does not contain`);
  if (new Set(parsed.data.keys.map((k) => k.name)).size !== parsed.data.keys.length) throw new KeyringError(`keyring ${file} has duplicate key names`);
  return parsed.data;
}

/** Reads the keyring, or undefined if the file does not exist. Any other problem throws KeyringError. */
export async function readKeyring(file: string): Promise<KeyringFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyringError(`keyring ${file} cannot be read: ${(err as Error).message}`);
  }
  return parseKeyring(text, file);
}

async function writeKeyring(file: string, keyring: KeyringFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(keyring, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, file).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
}

/** Creates a keyring with one primary key; refuses to overwrite an existing file. */
export async function createKeyring(file: string): Promise<KeyringFile> {
  const key = newKey();
  const keyring: KeyringFile = { version: 1, primary: key.name, keys: [key] };
  await mkdir(dirname(file), { recursive: true });
  // 'wx': if two processes race to create it, exactly one wins and the other reads the winner's.
  const fh = await open(file, 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') return undefined;
    throw err;
  });
  if (!fh) return (await readKeyring(file))!;
  try {
    await fh.writeFile(JSON.stringify(keyring, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return keyring;
}

/** Adds a new key and makes it primary; old keys stay for decryption. Returns the new key's name. */
export async function addPrimaryKey(file: string): Promise<string> {
  const keyring = await readKeyring(file);
  if (!keyring) throw new KeyringError(`keyring ${file} does not exist`);
  const key = newKey();
  await writeKeyring(file, { ...keyring, primary: key.name, keys: [...keyring.keys, key] });
  return key.name;
}

/** Drops keys other than the primary (after rotate-keys has left no ciphertext under them). */
export async function retireOldKeys(file: string, keep: (name: string) => boolean): Promise<string[]> {
  const keyring = await readKeyring(file);
  if (!keyring) throw new KeyringError(`keyring ${file} does not exist`);
  const retired = keyring.keys.filter((k) => k.name !== keyring.primary && !keep(k.name)).map((k) => k.name);
  if (retired.length) await writeKeyring(file, { ...keyring, keys: keyring.keys.filter((k) => !retired.includes(k.name)) });
  return retired;
}
