// Requests waiting for a place among the SHED_MAX_IN_FLIGHT, in arrival order (http/pipeline.ts).
// Answering them 503 at once was measured worse for every client involved: with 1,000 clients
// each sending its next request as soon as it has an answer, the 503s came back as new requests
// at once, and answering them took the CPU that would have served them: 190 answered requests a
// second instead of 950 with the same process and database (docs/connections.md). Waiting costs
// the memory of a parsed request, and no longer than SHED_QUEUE_TIMEOUT_MS.

/** A FIFO with O(1) push and shift (an array's shift() is O(n) past V8's small-array fast path). */
export class Waiting<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the consumed half dominates, so the array does not grow without end.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
