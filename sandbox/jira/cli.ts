// CLI for the demo: starts the Jira Cloud simulator, optionally installs an app, prints the URLs.
//   node --import tsx sandbox/jira/cli.ts [--port 4400] [--host 127.0.0.1] [--seed demo]
//        [--site acme] [--site globex:own-port] [--install http://localhost:3000/atlassian-connect.json]
//        [--page /pages/admin] [--latency 50] [--rate-limit 10/5]
import { parseArgs } from 'node:util';
import { startJiraSimulator, type SiteOptions } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4400' },
    host: { type: 'string', default: '127.0.0.1' },
    seed: { type: 'string', default: 'demo' },
    site: { type: 'string', multiple: true },
    install: { type: 'string' },
    page: { type: 'string', default: '/pages/admin' },
    latency: { type: 'string' },
    'rate-limit': { type: 'string' },
  },
});

const sites: SiteOptions[] = (values.site ?? ['acme']).map((s) => {
  const [name, flag] = s.split(':');
  return { name: name!, ownPort: flag === 'own-port' };
});
const rate = values['rate-limit']?.split('/').map(Number);

const sim = await startJiraSimulator({
  host: values.host,
  port: Number(values.port),
  seed: values.seed,
  sites,
  ...(values.latency ? { latencyMs: Number(values.latency) } : {}),
  ...(rate && rate.length === 2 ? { rateLimit: { capacity: rate[0]!, refillPerSecond: rate[1]! } } : {}),
});

const out: string[] = [
  `Jira Cloud simulator on ${sim.url}`,
  `  CONNECT_INSTALL_KEYS_URL=${sim.keysUrl}`,
  `  OUTBOUND_ALLOW_HOSTS should include: ${[...new Set(sim.sites().map((s) => new URL(sim.siteUrl(s)).host))].join(',')}`,
];
for (const name of sim.sites()) {
  out.push(`  site ${name}: baseUrl ${sim.siteUrl(name)}  (issues page ${sim.siteUrl(name)}/browse)`);
  if (values.install) {
    const r = await sim.installApp(name, values.install);
    out.push(`    install of ${values.install}: ${r.ok ? 'ok' : 'FAILED'} (HTTP ${r.status}${r.ok ? '' : ` ${r.responseBody.slice(0, 200)}`})`);
    if (r.ok) {
      for (const u of sim.site(name).users) {
        out.push(`    as ${u.displayName}${u.siteAdmin ? ' (site admin)' : ''}: ${sim.iframeUrl(name, u, values.page)}`);
      }
    }
  }
}
console.log(out.join('\n'));

const stop = (): void => {
  void sim.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
