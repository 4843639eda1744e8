// The app's Jira side running for real on loopback (descriptor + lifecycle), installed on sites of
// the Jira simulator by the simulator itself — so tests have genuine tenants with genuine secrets.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import { startJiraSimulator, type JiraSimulator, type JiraSimulatorOptions } from '../../sandbox/jira/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { buildServer } from '../../src/web/server.ts';
import type { TestDatabase } from './db.ts';
import { quietLog } from './db.ts';
import { freePort } from './net.ts';

export const APP_KEY = 'teamcity-integration-for-jira';

export interface JiraWorld {
  sim: JiraSimulator;
  app: FastifyInstance;
  appUrl: string;
  secrets: Secrets;
  /** The local keyring the world's secrets use (for processes started by tests). */
  keyringFile: string;
  tenants: TenantRepository;
  dispatcher: Dispatcher;
  /** Installs the app on a site; returns the tenant id. */
  install(site: string): Promise<string>;
  close(): Promise<void>;
}

export async function startJiraWorld(t: TestDatabase, simOptions: JiraSimulatorOptions = {}, extraAllowHosts: string[] = []): Promise<JiraWorld> {
  const keyDir = await mkdtemp(join(tmpdir(), 'tcj-world-'));
  const keyringFile = join(keyDir, 'keyring.json');
  const secrets = await Secrets.local(keyringFile, { secretsExist: async () => false });
  const tenants = new TenantRepository(t.db, secrets);
  const sim = await startJiraSimulator({ seed: 3, ...simOptions });
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  const dispatcher = createOutboundDispatcher({ allowHosts: [new URL(sim.url).host, ...extraAllowHosts], headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 });
  const app = buildServer({ db: t.db, log: quietLog });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [new URL(sim.url).host] });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    sim,
    app,
    appUrl,
    secrets,
    keyringFile,
    tenants,
    dispatcher,
    async install(site: string) {
      if (!sim.sites().includes(site)) await sim.addSite(site);
      const r = await sim.installApp(site, `${appUrl}/atlassian-connect.json`);
      if (r.status !== 204) throw new Error(`install on ${site} failed: ${r.status} ${r.responseBody}`);
      return (await tenants.authByClientKey(r.clientKey))!.tenantId;
    },
    async close() {
      await app.close();
      await sim.close();
      await dispatcher.close();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}

/** The Jira projects the TeamCity simulator's generated commits mention (ABC, XYZ, OPS), with issues 1–999. */
export function addGeneratedHistoryProjects(world: JiraWorld, site: string): void {
  const s = world.sim.site(site);
  for (const key of ['ABC', 'XYZ', 'OPS']) {
    s.addProject({ key, name: key });
    for (let i = 1; i <= 999; i++) s.addIssue(key, `${key} issue ${i}`);
  }
}
