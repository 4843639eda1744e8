// Which PostgreSQL to use: DATABASE_URL (the schema owner's login) when set, otherwise the embedded
// server in DATA_DIR. The runtime login is a different, unprivileged role (roles.ts).
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { ROLE_APP } from './roles.ts';

export interface DatabaseUrls {
  /** The schema owner: migrations and operator commands. */
  ownerUrl: string;
  /** The runtime role: everything the web and worker processes do. */
  appUrl: string;
  embedded: boolean;
  /** Stops the embedded server if this process started it. */
  release(): Promise<void>;
}

/** DATABASE_URL with the runtime role as user and no password (trust, peer, cert or .pgpass auth). */
export function deriveAppUrl(ownerUrl: string): string {
  const u = new URL(ownerUrl);
  u.username = ROLE_APP;
  u.password = '';
  return u.toString();
}

export async function resolveDatabase(config: Config, log: Logger, opts: { attachIfRunning?: boolean } = {}): Promise<DatabaseUrls> {
  if (config.databaseUrl) {
    return {
      ownerUrl: config.databaseUrl,
      appUrl: config.databaseAppUrl ?? deriveAppUrl(config.databaseUrl),
      embedded: false,
      release: async () => {},
    };
  }
  const db = await startEmbeddedPostgres({ dataDir: config.dataDir, log, attachIfRunning: opts.attachIfRunning ?? false });
  return { ownerUrl: db.ownerUrl, appUrl: db.appUrl, embedded: true, release: () => db.stop() };
}
