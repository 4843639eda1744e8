// The worker: claims due servers and tenants with pending deliveries from PostgreSQL (leases taken
// with FOR UPDATE SKIP LOCKED, so any number of workers share the work and a dead worker's lease
// simply expires) and runs each claim as its own task, so one slow server or tenant only ever
// occupies one slot.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/database.ts';
import type { Logger } from '../log.ts';

/** One claim of one server (claim_polls): the poll fences its writes on the token. */
export interface PollLease {
  /** Unique per claim: the worker id plus a random suffix. */
  token: string;
  /** The lease lapses this long after the claim unless renewed or given back. */
  seconds: number;
  /** When the poll was due (its lag is measured from here). */
  dueAt: Date;
}

export interface WorkerTasks {
  poll(tenantId: string, serverId: string, lease: PollLease): Promise<void>;
  deliver(tenantId: string, workerId: string): Promise<void>;
  /** Housekeeping run every maintenanceIntervalMs (retention purge, pending deletions). */
  maintain?(): Promise<void>;
}

export interface WorkerOptions {
  workerId?: string;
  tickMs?: number;
  maxConcurrentPolls?: number;
  maxConcurrentDeliveries?: number;
  /**
   * A poll claim's lease: short, so that a poll with nothing to write lets it lapse before its next
   * poll is due (and "sync now" waits at most this long); a poll renews it every third while it works.
   */
  pollLeaseSeconds?: number;
  deliveryLeaseSeconds?: number;
  /** How often this worker runs the housekeeping task (several workers may; it is idempotent). */
  maintenanceIntervalMs?: number;
}

export class SyncWorker {
  readonly workerId: string;
  private readonly polls = new Map<string, Promise<void>>();
  private readonly deliveries = new Map<string, Promise<void>>();
  private maintenance: Promise<void> | undefined;
  private lastMaintenance = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private woken = false;
  private stopped = false;
  private readonly opts: Required<Omit<WorkerOptions, 'workerId'>>;

  constructor(
    private readonly db: Database,
    private readonly tasks: WorkerTasks,
    private readonly log: Logger,
    opts: WorkerOptions = {},
  ) {
    this.workerId = opts.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.opts = {
      tickMs: opts.tickMs ?? 1000,
      maxConcurrentPolls: opts.maxConcurrentPolls ?? 8,
      maxConcurrentDeliveries: opts.maxConcurrentDeliveries ?? 8,
      pollLeaseSeconds: opts.pollLeaseSeconds ?? 5,
      deliveryLeaseSeconds: opts.deliveryLeaseSeconds ?? 300,
      maintenanceIntervalMs: opts.maintenanceIntervalMs ?? 60_000,
    };
  }

  start(): void {
    this.log.info({ workerId: this.workerId }, 'sync worker started');
    const loop = () => {
      if (this.stopped) return;
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        const again = this.woken;
        this.woken = false;
        if (!this.stopped) this.timer = setTimeout(loop, again ? 0 : this.opts.tickMs);
      });
    };
    // A finished poll frees a slot: claim again now rather than at the next tick, or a worker could
    // never run more than maxConcurrentPolls polls per tickMs (8/s), however short they are. (Every
    // claim moves its server's next_poll_at forward, so this cannot spin on one server.)
    this.wake = () => {
      if (this.stopped) return;
      if (this.ticking) {
        this.woken = true;
        return;
      }
      clearTimeout(this.timer);
      loop();
    };
    loop();
  }

  /** Stops claiming and waits for the work in hand (leases of unfinished work expire on their own). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    await Promise.allSettled([...this.polls.values(), ...this.deliveries.values(), this.maintenance]);
    this.log.info({ workerId: this.workerId }, 'sync worker stopped');
  }

  /** One round of claiming; exposed for tests that drive the worker step by step. */
  async tick(): Promise<void> {
    try {
      const freePolls = this.opts.maxConcurrentPolls - this.polls.size;
      if (freePolls > 0) {
        const { rows } = await this.db.pool.query<{ tenant_id: string; server_id: string; lease_token: string; lease_seconds: number; due_at: Date }>(
          'SELECT * FROM claim_polls($1, $2, $3)',
          [this.workerId, this.opts.pollLeaseSeconds, freePolls],
        );
        for (const r of rows) {
          const lease: PollLease = { token: r.lease_token, seconds: r.lease_seconds, dueAt: r.due_at };
          this.run(this.polls, r.server_id, () => this.tasks.poll(r.tenant_id, r.server_id, lease), { tenantId: r.tenant_id, serverId: r.server_id });
        }
      }
      const freeDeliveries = this.opts.maxConcurrentDeliveries - this.deliveries.size;
      if (freeDeliveries > 0) {
        const { rows } = await this.db.pool.query<{ tenant_id: string }>('SELECT * FROM claim_due_deliveries($1, $2, $3)', [
          this.workerId,
          this.opts.deliveryLeaseSeconds,
          freeDeliveries,
        ]);
        for (const r of rows) this.run(this.deliveries, r.tenant_id, () => this.tasks.deliver(r.tenant_id, this.workerId), { tenantId: r.tenant_id });
      }
      if (this.tasks.maintain && !this.maintenance && Date.now() - this.lastMaintenance >= this.opts.maintenanceIntervalMs) {
        this.lastMaintenance = Date.now();
        this.maintenance = this.tasks
          .maintain()
          .catch((err: unknown) => this.log.error({ err }, 'housekeeping failed'))
          .finally(() => (this.maintenance = undefined));
      }
    } catch (err) {
      // The database may be restarting: log and try again next tick.
      this.log.warn({ err }, 'worker could not claim work');
    }
  }

  /** Resolves when no task is running (tests). */
  async idle(): Promise<void> {
    while (this.polls.size || this.deliveries.size || this.maintenance) {
      await Promise.allSettled([...this.polls.values(), ...this.deliveries.values(), this.maintenance]);
    }
  }

  private run(into: Map<string, Promise<void>>, key: string, task: () => Promise<void>, ids: Record<string, string>): void {
    // The same key can be claimed again before this task settles (its lease is released just before
    // it resolves): remove only this task's own entry, never the newer one's.
    const p: Promise<void> = task()
      .catch((err: unknown) => this.log.error({ err, ...ids }, 'sync task failed'))
      .finally(() => {
        if (into.get(key) === p) into.delete(key);
        if (into === this.polls) this.wake?.();
      });
    into.set(key, p);
  }
}
