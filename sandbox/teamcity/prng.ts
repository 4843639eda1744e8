// Tiny deterministic PRNG (mulberry32) — same seed, same sequence, on every platform.
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    const v = items[Math.floor(this.next() * items.length)];
    if (v === undefined) throw new Error('pick from empty list');
    return v;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  hex(len: number): string {
    let s = '';
    while (s.length < len) s += ((this.next() * 0x100000000) >>> 0).toString(16).padStart(8, '0');
    return s.slice(0, len);
  }
}
