// A bound on how many tasks one key (a client address) has running at once, in front of a shared
// resource (the password-hashing semaphore): past it, the key's next task is refused at once, so
// one client can hold at most its share of the resource and never the whole of it.

export class PerKeyLimit {
  readonly #max: number;
  readonly #held = new Map<string, number>();

  /** `max` tasks per key at once; 0: no bound. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Tasks `key` holds now. */
  held(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** Runs `task` as one of `key`'s, or calls `refuse` (and runs nothing) when `key` holds its share. */
  async run<T>(key: string, task: () => Promise<T>, refuse: () => Error): Promise<T> {
    if (this.#max === 0) return task();
    const held = this.held(key);
    if (held >= this.#max) throw refuse();
    this.#held.set(key, held + 1);
    try {
      return await task();
    } finally {
      // The map holds only keys with tasks running: it is bounded by the tasks, not the clients.
      const left = this.held(key) - 1;
      if (left === 0) this.#held.delete(key);
      else this.#held.set(key, left);
    }
  }
}
