// Demo CLI: starts a TeamCity simulator with generated history and prints its URL and credentials.
//   node --import tsx sandbox/teamcity/cli.ts [--port 8111] [--seed 1] [--projects 3] [--types 6] [--builds 200]
//        [--version 2025.11.2] [--error-format text2023|structured2025] [--utc-offset 180] [--latency 0]
//        [--real-time] [--tick-seconds 30]
// With --tick-seconds N the clock advances and a build is queued/started/finished every N real seconds.
import { parseArgs } from 'node:util';
import { startTeamCitySimulator } from './server.ts';
import type { ErrorFormat } from './format.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8111' },
    seed: { type: 'string', default: '1' },
    projects: { type: 'string', default: '3' },
    types: { type: 'string', default: '6' },
    builds: { type: 'string', default: '200' },
    version: { type: 'string', default: '2025.11.2' },
    'error-format': { type: 'string' },
    'utc-offset': { type: 'string', default: '0' },
    latency: { type: 'string', default: '0' },
    'real-time': { type: 'boolean', default: false },
    'tick-seconds': { type: 'string', default: '0' },
  },
});

const errorFormat = values['error-format'] as ErrorFormat | undefined;
const sim = await startTeamCitySimulator({
  port: Number(values.port),
  seed: Number(values.seed),
  version: values.version,
  ...(errorFormat ? { errorFormat } : {}),
  utcOffsetMinutes: Number(values['utc-offset']),
  realTime: values['real-time'],
  startTime: values['real-time'] ? Date.now() : undefined,
});
sim.faults.setLatency(Number(values.latency));
const gen = sim.generateHistory({
  seed: Number(values.seed),
  projects: Number(values.projects),
  buildTypesPerProject: Number(values.types),
  buildsPerType: Number(values.builds),
});
const token = sim.model.addToken('admin');
sim.model.addUser({ username: 'jira-sync', password: 'jira-sync-pw', name: 'Jira sync (read-only)', viewProjects: [gen.projects[0]!] });
const syncToken = sim.model.addToken('jira-sync');

console.log(`TeamCity simulator ${values.version} listening on ${sim.url}`);
console.log(`  admin:      basic admin:admin   or  Authorization: Bearer ${token}`);
console.log(`  jira-sync:  basic jira-sync:jira-sync-pw (sees only ${gen.projects[0]!})  or  Bearer ${syncToken}`);
console.log(`  users:      ${gen.users.map((u) => `${u}:${u}-pw`).join(' ')}`);
console.log(`  data:       ${gen.builds} builds, ${gen.changes} changes, ${gen.buildTypes.length} configurations in ${gen.projects.join(', ')}`);
console.log(`  try:        curl -u admin:admin -H 'Accept: application/json' '${sim.url}/app/rest/builds?locator=count:5'`);

const tick = Number(values['tick-seconds']);
if (tick > 0) {
  let n = 0;
  const timer = setInterval(() => {
    const m = sim.model;
    if (!values['real-time']) m.advance(tick * 1000);
    const bt = gen.buildTypes[n++ % gen.buildTypes.length]!;
    const root = m.buildType(bt).vcsRootIds[0];
    if (root) m.addChange({ vcsRootId: root, comment: `ABC-${100 + n} live change ${n}`, username: 'alice' });
    const queued = m.queueBuild({ buildTypeId: bt });
    m.startBuild(queued.id);
    for (const r of [...m.running]) {
      if (r.startDate !== null && m.now() - r.startDate > tick * 2000) m.finishBuild(r.id, { status: n % 5 === 0 ? 'FAILURE' : 'SUCCESS' });
    }
  }, tick * 1000);
  timer.unref();
}

const stop = (): void => {
  void sim.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
