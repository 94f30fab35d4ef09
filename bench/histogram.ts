// A latency histogram with microsecond resolution. autocannon's own histogram records whole
// milliseconds, which cannot tell 0.3 ms from 0.9 ms: the "p99 < 1 ms" target needs
// better. Log-linear buckets (as HdrHistogram): exact below 1,024 µs, then 128 sub-buckets per
// power of two, so every recorded value is within 0.8% of the truth, in a few kB.

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128 sub-buckets per power of two
const LINEAR = 1024; // values below this many µs get a bucket each

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export class Histogram {
  #counts = new Map<number, number>();
  #total = 0;
  #sum = 0;
  #max = 0;

  /** Records one value in microseconds. */
  record(us: number): void {
    const v = Math.max(0, Math.round(us));
    const b = bucketOf(v);
    this.#counts.set(b, (this.#counts.get(b) ?? 0) + 1);
    this.#total++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#total;
  }

  /** The value (µs) at quantile q in [0, 1]: the upper edge of the bucket that holds it. */
  quantile(q: number): number {
    if (this.#total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#total));
    let seen = 0;
    for (const b of [...this.#counts.keys()].sort((x, y) => x - y)) {
      seen += this.#counts.get(b)!;
      if (seen >= rank) return Math.min(upperOf(b), this.#max);
    }
    return this.#max;
  }

  /** Percentiles in milliseconds (the unit the reports use), rounded to the microsecond. */
  percentilesMs(): Percentiles {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.#max),
      mean: this.#total ? ms(this.#sum / this.#total) : 0,
    };
  }
}

function bucketOf(v: number): number {
  if (v < LINEAR) return v;
  const exp = Math.floor(Math.log2(v)); // >= 10
  const sub = Math.floor((v - 2 ** exp) / 2 ** (exp - SUB_BITS));
  return LINEAR + (exp - 10) * SUB + sub;
}

function upperOf(b: number): number {
  if (b < LINEAR) return b;
  const exp = 10 + Math.floor((b - LINEAR) / SUB);
  const sub = (b - LINEAR) % SUB;
  return 2 ** exp + (sub + 1) * 2 ** (exp - SUB_BITS) - 1;
}
