// The demo's organisation: a Jira site seed (issues with real-sounding summaries) and a TeamCity
// server with hand-made projects — Web Shop, Payments API, Mobile App — each with Build / Tests /
// Release (composite) / Deploy configurations, branches named after the Jira issues, plus a small
// generated history (nested projects, every build state) as background.
//
// `Activity` plays the developers: commits mentioning the issue keys on feature branches, builds and
// tests on them (a few failures and cancellations), merges to main, deployments to staging and then
// production. `seedRecentHistory` replays it in fast-forward over the last hours before the app
// connects (so Jira gets a backlog at once); `tick` then runs it live on the wall clock.
import type { SiteSeed } from '../../sandbox/jira/site.ts';
import { defaultSiteSeed } from '../../sandbox/jira/site.ts';
import type { TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import type { Build } from '../../sandbox/teamcity/model.ts';
import { Prng } from '../../sandbox/teamcity/prng.ts';

export const JIRA_PROJECTS = [
  {
    key: 'TCJ',
    name: 'TeamCity Integration',
    issues: [
      'Discount codes at checkout',
      'Retry payment gateway timeouts',
      'One-page checkout',
      'Order history in the mobile app',
      'VAT rounding on invoices',
      'Faster product search',
    ],
  },
  { key: 'DEMO', name: 'Demo Project', issues: ['Dark mode for the mobile app', 'Refunds through the Payments API', 'Wish list sharing'] },
];

export function demoSiteSeed(): SiteSeed {
  return {
    projects: JIRA_PROJECTS.map((p) => ({ key: p.key, name: p.name, issues: p.issues.map((summary) => ({ summary })) })),
    users: defaultSiteSeed().users ?? [],
  };
}

interface Product {
  id: string;
  name: string;
  repo: string;
  /** Build configurations run on every push; the first is the main build. */
  checks: Array<{ id: string; name: string; seconds: number }>;
  /** Composite configuration on main after the checks. */
  release?: { id: string; name: string };
  /** Deployment configurations, in promotion order. */
  deploys: Array<{ id: string; name: string }>;
}

const PRODUCTS: Product[] = [
  {
    id: 'WebShop', name: 'Web Shop', repo: 'web-shop',
    checks: [{ id: 'WebShop_Build', name: 'Build', seconds: 240 }, { id: 'WebShop_Tests', name: 'Tests', seconds: 420 }],
    release: { id: 'WebShop_Release', name: 'Release' },
    deploys: [{ id: 'WebShop_DeployStaging', name: 'Deploy to Staging' }, { id: 'WebShop_DeployProduction', name: 'Deploy to Production' }],
  },
  {
    id: 'PaymentsApi', name: 'Payments API', repo: 'payments-api',
    checks: [{ id: 'PaymentsApi_Build', name: 'Build', seconds: 180 }, { id: 'PaymentsApi_Tests', name: 'Tests', seconds: 360 }],
    deploys: [{ id: 'PaymentsApi_DeployStaging', name: 'Deploy to Staging' }, { id: 'PaymentsApi_DeployProduction', name: 'Deploy to Production' }],
  },
  {
    id: 'MobileApp', name: 'Mobile App', repo: 'mobile-app',
    checks: [{ id: 'MobileApp_Build', name: 'Build', seconds: 300 }, { id: 'MobileApp_UiTests', name: 'UI Tests', seconds: 480 }],
    deploys: [{ id: 'MobileApp_DeployQa', name: 'Deploy to QA' }],
  },
];

/** Which product each issue's work happens in, and its branch. */
const STORIES: Array<{ key: string; product: string; branch: string; work: string[] }> = [
  { key: 'TCJ-1', product: 'WebShop', branch: 'feature/TCJ-1-discount-codes', work: ['Add discount code field', 'Validate codes against the promotions service', 'Show the discount in the basket'] },
  { key: 'TCJ-2', product: 'PaymentsApi', branch: 'bugfix/TCJ-2-gateway-timeouts', work: ['Retry on 503 from the gateway', 'Add jitter to retries', 'Idempotency keys for retried charges'] },
  { key: 'TCJ-3', product: 'WebShop', branch: 'feature/TCJ-3-checkout', work: ['One-page checkout layout', 'Address form validation', 'Remember the last shipping method'] },
  { key: 'TCJ-4', product: 'MobileApp', branch: 'feature/TCJ-4-order-history', work: ['Order history screen', 'Paginate orders', 'Pull to refresh'] },
  { key: 'TCJ-5', product: 'PaymentsApi', branch: 'bugfix/TCJ-5-vat-rounding', work: ['Round VAT per line, not per invoice', 'Regression test for 0.005 cases'] },
  { key: 'TCJ-6', product: 'WebShop', branch: 'feature/TCJ-6-search', work: ['Search index warm-up', 'Cache facet counts'] },
  { key: 'DEMO-1', product: 'MobileApp', branch: 'feature/DEMO-1-dark-mode', work: ['Dark palette', 'Respect the system setting'] },
  { key: 'DEMO-2', product: 'PaymentsApi', branch: 'feature/DEMO-2-refunds', work: ['Refund endpoint', 'Partial refunds', 'Refund webhooks'] },
  { key: 'DEMO-3', product: 'WebShop', branch: 'feature/DEMO-3-wish-lists', work: ['Share a wish list by link'] },
];

const DEVELOPERS = ['alice', 'bob', 'carol', 'dave', 'erin'];

export interface OrgResult {
  /** Read-only service account for the app. */
  token: string;
  username: string;
  configurations: number;
}

/** Creates the hand-made projects and a small generated background; call before `seedRecentHistory`. */
export function createOrganisation(tc: TeamCitySimulator): OrgResult {
  const m = tc.model;
  // Background: nested projects, every build state, 10 days (ends where the hand-made history begins).
  tc.generateHistory({
    seed: 7, projects: 2, buildTypesPerProject: 3, buildsPerType: 10, periodMs: 10 * 86_400_000, jiraKeys: ['TCJ', 'DEMO'], idPrefix: 'Legacy',
    branches: ['feature/TCJ-2-gateway-timeouts', 'release/2025.10'],
  });
  for (const p of PRODUCTS) {
    m.addProject({ id: p.id, name: p.name, description: `${p.name} (demo)` });
    m.addVcsRoot({ id: `${p.id}_Git`, projectId: p.id, name: `${p.repo}.git`, url: `https://git.example.com/acme/${p.repo}.git`, defaultBranch: 'main' });
    const vcs = [`${p.id}_Git`];
    for (const c of p.checks) m.addBuildType({ id: c.id, projectId: p.id, name: c.name, type: 'regular', vcsRootIds: vcs, branched: true, defaultBranchName: 'main', estimatedDurationSec: c.seconds });
    if (p.release) m.addBuildType({ id: p.release.id, projectId: p.id, name: p.release.name, type: 'composite', vcsRootIds: vcs, branched: true, defaultBranchName: 'main' });
    for (const d of p.deploys) m.addBuildType({ id: d.id, projectId: p.id, name: d.name, type: 'deployment', vcsRootIds: vcs, branched: false, defaultBranchName: 'main', estimatedDurationSec: 120 });
  }
  for (const u of DEVELOPERS) if (!m.findUserByName(u)) m.addUser({ username: u, password: `${u}-pw` });
  m.addUser({ username: 'jira-sync', password: 'jira-sync-pw', name: 'Jira sync (read-only)', viewProjects: 'all' });
  return { token: m.addToken('jira-sync'), username: 'jira-sync', configurations: m.buildTypes.size };
}

type Next = () => void;

interface Plan {
  /** Clock time (TeamCity's) at which a queued build starts. */
  startAt: number;
  /** Clock time at which it finishes (from its start). */
  durationMs: number;
  outcome: 'success' | 'failure' | 'cancel-queued' | 'cancel-running';
  /** What a successful finish triggers (the next step of the pipeline). */
  onSuccess?: Next;
}

export interface ActivityStats {
  commits: number;
  queued: number;
  finished: number;
  failed: number;
  canceled: number;
  deployments: number;
}

/**
 * The developers. `stepMs` is the typical time between two steps; build durations scale with it, so
 * the same logic runs in fast-forward (history) and live (a few seconds per step).
 */
export class Activity {
  private readonly rnd: Prng;
  private readonly plans = new Map<number, Plan>();
  private readonly progress = new Map<string, number>();
  private readonly mergedSinceDeploy = new Map<string, number>();
  private pr = 100;
  readonly stats: ActivityStats = { commits: 0, queued: 0, finished: 0, failed: 0, canceled: 0, deployments: 0 };

  constructor(private readonly tc: TeamCitySimulator, seed = 42) {
    this.rnd = new Prng(seed);
  }

  private get m() {
    return this.tc.model;
  }

  /** Replays the activity from the clock's current time up to `until` (wall clock), in steps of ~`stepMs`. */
  seedRecentHistory(until: number, stepMs: number): void {
    while (this.m.now() + stepMs < until) {
      this.advanceBuilds();
      this.act(stepMs);
      this.m.advance(this.rnd.int(Math.round(stepMs * 0.5), Math.round(stepMs * 1.5)));
    }
    const rest = until - this.m.now();
    if (rest > 0) this.m.advance(rest);
  }

  /** One live step: start and finish due builds, then one new developer action. */
  tick(stepMs: number): void {
    this.advanceBuilds();
    this.act(stepMs);
  }

  private queue(buildTypeId: string, branch: string | undefined, stepMs: number, opts: { user?: string; onSuccess?: Next; reliable?: boolean } = {}): Build {
    const b = this.m.queueBuild({ buildTypeId, ...(branch ? { branch } : {}), ...(opts.user ? { user: opts.user, triggerType: 'user' } : {}) });
    this.stats.queued++;
    const roll = this.rnd.next();
    const outcome: Plan['outcome'] = opts.reliable
      ? roll < 0.05 ? 'failure' : 'success'
      : roll < 0.16 ? 'failure' : roll < 0.2 ? 'cancel-running' : roll < 0.23 ? 'cancel-queued' : 'success';
    this.plans.set(b.id, {
      startAt: this.m.now() + this.rnd.int(0, stepMs),
      durationMs: this.rnd.int(stepMs, stepMs * 3),
      outcome,
      ...(opts.onSuccess ? { onSuccess: opts.onSuccess } : {}),
    });
    return b;
  }

  private advanceBuilds(): void {
    const now = this.m.now();
    for (const [id, plan] of [...this.plans]) {
      const b = this.m.build(id);
      if (b.state === 'queued' && now >= plan.startAt) {
        if (plan.outcome === 'cancel-queued') {
          this.m.cancelBuild(id, { user: this.rnd.pick(DEVELOPERS), text: 'Superseded by a newer build' });
          this.stats.canceled++;
          this.plans.delete(id);
          continue;
        }
        this.m.startBuild(id);
        if (plan.outcome === 'failure' && this.rnd.chance(0.5)) this.m.markFailing(id);
      } else if (b.state === 'running' && b.startDate !== null && now >= b.startDate + plan.durationMs) {
        this.plans.delete(id);
        if (plan.outcome === 'cancel-running') {
          this.m.cancelBuild(id, { user: this.rnd.pick(DEVELOPERS), text: 'Stopped: superseded by a newer build', immediate: true });
          this.stats.canceled++;
          continue;
        }
        const failed = plan.outcome === 'failure';
        const isTests = /Tests$/.test(b.buildType.id);
        const isDeploy = b.buildType.type === 'deployment';
        this.m.finishBuild(id, {
          status: failed ? 'FAILURE' : 'SUCCESS',
          ...(isTests ? { tests: { passed: this.rnd.int(180, 900), failed: failed ? this.rnd.int(1, 4) : 0, ignored: this.rnd.int(0, 6) } } : {}),
          ...(failed && !isTests ? { statusText: isDeploy ? 'Deployment failed: health check timed out' : 'Compilation error: 2 errors' } : {}),
        });
        this.stats.finished++;
        if (isDeploy) this.stats.deployments++;
        if (failed) this.stats.failed++;
        else plan.onSuccess?.();
      }
    }
  }

  /** One developer action: push to a story branch, merge a story, or promote a release. */
  private act(stepMs: number): void {
    const r = this.rnd.next();
    const story = this.rnd.pick(STORIES);
    const product = PRODUCTS.find((p) => p.id === story.product)!;
    const root = `${product.id}_Git`;
    const dev = this.rnd.pick(DEVELOPERS);
    if (r < 0.6) {
      // A push to the story's branch: every check builds it.
      const n = (this.progress.get(story.key) ?? 0) + 1;
      this.progress.set(story.key, n);
      const what = story.work[(n - 1) % story.work.length]!;
      const comment = this.rnd.chance(0.5) ? `${story.key} ${what}` : `${what}\n\nRefs ${story.key}`;
      this.m.addChange({ vcsRootId: root, branch: story.branch, comment, username: dev, files: [`src/${product.repo}/${what.toLowerCase().replace(/\W+/g, '-')}.ts`] });
      this.stats.commits++;
      for (const c of product.checks) this.queue(c.id, story.branch, stepMs);
    } else if (r < 0.85) {
      // A merge to main: checks on main, then the release, then staging (and later production).
      this.pr += 1;
      this.m.addChange({
        vcsRootId: root, branch: 'main', username: dev,
        comment: `Merge pull request #${this.pr} from acme/${story.branch}\n\n${story.key} ${story.work[0]}`,
      });
      this.stats.commits++;
      this.mergedSinceDeploy.set(product.id, (this.mergedSinceDeploy.get(product.id) ?? 0) + 1);
      const [main, ...others] = product.checks;
      for (const c of others) this.queue(c.id, 'main', stepMs);
      this.queue(main!.id, 'main', stepMs, {
        onSuccess: () => {
          if (product.release) this.queue(product.release.id, 'main', stepMs, { reliable: true, onSuccess: () => this.deploy(product, 0, stepMs) });
          else this.deploy(product, 0, stepMs);
        },
      });
    } else {
      // Someone promotes what is on staging to the next environment.
      const withNext = PRODUCTS.filter((p) => p.deploys.length > 1);
      const p = this.rnd.pick(withNext);
      this.deploy(p, 1, stepMs);
    }
  }

  private deploy(product: Product, stage: number, stepMs: number): void {
    const d = product.deploys[stage];
    if (!d) return;
    this.queue(d.id, undefined, stepMs, {
      user: this.rnd.pick(DEVELOPERS),
      reliable: true,
      // Staging succeeded: production follows now and then on its own.
      onSuccess: () => {
        if (stage + 1 < product.deploys.length && this.rnd.chance(0.4)) this.deploy(product, stage + 1, stepMs);
      },
    });
  }
}
