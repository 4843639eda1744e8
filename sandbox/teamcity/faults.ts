// Per-server fault injection, settable at runtime.
import { Prng } from './prng.ts';

export type FaultKind =
  /** respond with `status` (5xx by default 500) and a TeamCity-style error body */
  | 'status'
  /** accept the request and never answer (until the simulator closes) */
  | 'hang'
  /** send headers and half of the body, then destroy the socket */
  | 'reset'
  /** 200 application/json with a truncated JSON body */
  | 'malformedJson'
  /** 200 text/html login page instead of the REST answer (proxy / SSO / misrouted basic auth) */
  | 'htmlLogin';

export interface FaultRule {
  kind: FaultKind;
  /** for `status` */
  status?: number;
  /** fire for the next N matching requests (default: unlimited when `probability` is set, else 1) */
  count?: number;
  /** fire with this probability (seeded PRNG → deterministic sequence) */
  probability?: number;
  /** only for request paths containing this string / matching this RegExp */
  path?: string | RegExp;
}

export class FaultController {
  /** added to every response (real milliseconds) */
  latencyMs = 0;
  private rules: (FaultRule & { remaining: number })[] = [];
  private readonly prng: Prng;

  constructor(seed: number) {
    this.prng = new Prng(seed ^ 0x5eed);
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  inject(rule: FaultRule): void {
    const remaining = rule.count ?? (rule.probability !== undefined ? Infinity : 1);
    this.rules.push({ ...rule, remaining });
  }

  /** Convenience: the next `n` requests answer `status`. */
  failNext(n: number, status = 500): void {
    this.inject({ kind: 'status', status, count: n });
  }

  clear(): void {
    this.rules = [];
    this.latencyMs = 0;
  }

  pending(): readonly FaultRule[] {
    return this.rules;
  }

  /** Picks (and consumes) the fault for a request, if any. */
  take(path: string): FaultRule | undefined {
    for (const r of this.rules) {
      if (r.remaining <= 0) continue;
      if (r.path !== undefined && !(typeof r.path === 'string' ? path.includes(r.path) : r.path.test(path))) continue;
      if (r.probability !== undefined && !this.prng.chance(r.probability)) continue;
      r.remaining--;
      this.rules = this.rules.filter((x) => x.remaining > 0);
      return r;
    }
    return undefined;
  }
}
