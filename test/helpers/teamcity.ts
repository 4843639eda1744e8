// A TeamCity client talking to a simulator as its built-in admin, through the real SSRF-guarded
// dispatcher with only the simulator allow-listed.
import type { Dispatcher } from 'undici';
import type { TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createLogger } from '../../src/log.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { TeamCityClient, type TeamCityClientOptions } from '../../src/teamcity/client.ts';

export function adminClient(sim: TeamCitySimulator, extra: Partial<TeamCityClientOptions> = {}): { client: TeamCityClient; dispatcher: Dispatcher } {
  const dispatcher = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${sim.port}`] });
  const client = new TeamCityClient({
    baseUrl: sim.url,
    auth: { type: 'basic', username: 'admin', password: 'admin' },
    dispatcher,
    log: createLogger({ level: 'silent' }),
    ...extra,
  });
  return { client, dispatcher };
}
