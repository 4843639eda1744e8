// The baseline: what typical TeamCity → Jira integrations do, as a small, honest poller that really
// makes its requests against the same simulators (not arithmetic):
//  - it polls each build configuration separately (`buildType:(id:X)`), newest builds since the last
//    one it saw;
//  - it asks TeamCity for each build's changes with one request per build;
//  - it sends each build to Jira in its own request (one Jira request per build event).
// It reuses the app's HTTP clients (auth, paging, JWT) and mapping, so the only difference measured
// is the request pattern. Finished builds only (as most such plugins do).
import type { Dispatcher } from 'undici';
import { JiraClient } from '../../src/jira/client.ts';
import { ConnectJwtCredentials } from '../../src/jira/credentials.ts';
import { collectIssueKeys, issueKeyInputFromBuild } from '../../src/sync/issue-keys.ts';
import { toJiraBuild } from '../../src/sync/transform.ts';
import { TeamCityClient } from '../../src/teamcity/client.ts';
import { formatTcDate } from '../../src/teamcity/dates.ts';
import { buildsPageFields } from '../../src/teamcity/fields.ts';
import type { TcBuild } from '../../src/teamcity/types.ts';
import { APP_KEY, quietLog } from './env.ts';

export interface BaselineServer {
  /** Connection id used in pipeline ids (`<connectionId>/<buildType>`), so latency can be matched. */
  connectionId: string;
  url: string;
  token: string;
  /** External ids of the configurations it is configured to watch. */
  buildTypes: string[];
}

export interface BaselineJira {
  baseUrl: string;
  sharedSecret: string;
}

/** A counting semaphore: the baseline gets the same parallelism as the app's worker (8 polls). */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(f: () => Promise<T>): Promise<T> {
    while (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await f();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class BaselinePoller {
  private readonly tc: TeamCityClient;
  private readonly jira: JiraClient;
  /** Highest build id seen per configuration. */
  private readonly last = new Map<string, number>();
  private usn = Date.now();
  /** Builds that started after this are new when a configuration has no build yet. */
  private since = new Date(0);
  builds = 0;
  polls = 0;

  constructor(
    private readonly server: BaselineServer,
    jira: BaselineJira,
    dispatcher: Dispatcher,
  ) {
    this.tc = new TeamCityClient({ baseUrl: server.url, auth: { type: 'token', token: server.token }, dispatcher, log: quietLog });
    this.jira = new JiraClient({ baseUrl: jira.baseUrl, credentials: new ConnectJwtCredentials(APP_KEY, jira.sharedSecret), dispatcher, log: quietLog });
  }

  /** Starting point for steady state: remember the newest finished build of each configuration (one request each). */
  async prime(serverNow: Date): Promise<void> {
    this.since = serverNow;
    for (const bt of this.server.buildTypes) {
      for await (const page of this.tc.builds(`defaultFilter:false,buildType:(id:${bt}),state:finished,personal:false,branch:default:any,count:1`, 'count,nextHref,build(id)', { maxPages: 1 })) {
        this.last.set(bt, page.items[0]?.id ?? 0);
      }
    }
  }

  /** One poll: every configuration separately; per new build one changes request and one Jira request. */
  async poll(since?: Date): Promise<number> {
    if (since) this.since = since;
    this.polls++;
    let n = 0;
    for (const bt of this.server.buildTypes) {
      const last = this.last.get(bt);
      const cond = last ? `sinceBuild:(id:${last})` : `startDate:(date:${formatTcDate(this.since, 0)},condition:after)`;
      const fresh: TcBuild[] = [];
      for await (const page of this.tc.builds(`defaultFilter:false,buildType:(id:${bt}),state:finished,personal:false,branch:default:any,${cond},count:100`, buildsPageFields(), {
        stopOnEmptyPage: Boolean(last),
      })) {
        fresh.push(...page.items);
      }
      for (const b of fresh.sort((a, c) => a.id - c.id)) {
        const changes = await this.tc.allChanges(b.id);
        const { keys } = collectIssueKeys(issueKeyInputFromBuild(b, changes));
        const payload = toJiraBuild(b, { connectionId: this.server.connectionId, issueKeys: keys, updateSequenceNumber: this.usn++ });
        if (payload) await this.jira.submitBuilds({ properties: { connectionId: this.server.connectionId }, providerMetadata: { product: 'TeamCity' }, builds: [payload] });
        this.last.set(bt, Math.max(this.last.get(bt) ?? 0, b.id));
        n++;
      }
      if (!this.last.has(bt)) this.last.set(bt, 0);
    }
    this.builds += n;
    return n;
  }
}
