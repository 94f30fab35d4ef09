// A counting semaphore with a bounded, time-limited queue. Used where work is expensive and
// parallelism is physically limited (Argon2 runs on libuv's threadpool): past the bound, callers
// get a fast refusal (`Busy`, which the HTTP error model answers as 503 with Retry-After) instead
// of an unbounded queue that turns into timeouts.

/** A task refused by a `Semaphore`: its queue was full, or it waited maxWaitMs for a permit. */
export class Busy extends Error {
  /** The resource's name (SemaphoreOptions.name). */
  readonly resource: string;
  constructor(resource: string) {
    super(`${resource} is busy, retry later`);
    this.name = 'Busy';
    this.resource = resource;
  }
}

export interface SemaphoreOptions {
  /** Tasks running at once. */
  permits: number;
  /** Tasks allowed to wait for a permit; more are refused at once. */
  queue: number;
  /** A waiting task gives up after this long. */
  maxWaitMs: number;
  /** Names the resource in the refusal (and so in the 503 body). */
  name: string;
}

export class Semaphore {
  readonly #opts: SemaphoreOptions;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  /** Tasks refused (queue full or waited too long), for metrics. */
  rejected = 0;

  constructor(opts: SemaphoreOptions) {
    this.#opts = opts;
  }

  get running(): number {
    return this.#running;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.#acquire();
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  #busy(): Busy {
    this.rejected++;
    return new Busy(this.#opts.name);
  }

  #acquire(): Promise<void> {
    if (this.#running < this.#opts.permits) {
      this.#running++;
      return Promise.resolve();
    }
    if (this.#waiting.length >= this.#opts.queue) return Promise.reject(this.#busy());
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        this.#running++;
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.#waiting.indexOf(grant);
        if (i !== -1) this.#waiting.splice(i, 1);
        reject(this.#busy());
      }, this.#opts.maxWaitMs);
      this.#waiting.push(grant);
    });
  }

  #release(): void {
    this.#running--;
    this.#waiting.shift()?.();
  }
}
