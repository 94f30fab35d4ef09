// Every parameterised statement is prepared once per connection, as SQLx's statement cache does.
//
// A statement sent with its whole text is parsed and planned again by PostgreSQL on every call:
// four fifths of its work on the article read (pgbench on that statement: 7.7k tps with
// `-M extended`, 41k with `-M prepared`; BENCHMARKS.md). The request pool (pool.ts, postgres.js)
// prepares every statement with parameters on each connection the first time it runs there, and
// afterwards sends only Bind/Execute. Statements without parameters (`begin`, `select 1`, a
// migration) go on the simple protocol: one message, nothing to plan worth keeping.
//
// Generic plans: left to itself (plan_cache_mode = auto), PostgreSQL keeps planning a statement
// for its values whenever the generic plan's estimate looks costlier. For the list statements it
// always does (an unknown LIMIT is estimated as a tenth of the table): 110-120 µs of planning per
// call, a fifth of their time, for the plan a generic one matches block for block. So the pool's
// connections run with plan_cache_mode = force_generic_plan (pool.ts), and
// src/db/indexes.test.ts holds the generic plan of every list, feed, filter, article, comment,
// profile and login statement to its indexes and to the blocks the plan for its values reads.
// Where the best plan depends on the values, the statement is sent with `plannedPerCall`
// instead: its values written into the text, planned for them on every call (the feed: see
// articles.listing.ts).

/**
 * A statement PostgreSQL plans for its values on every call: the values written into the text
 * and sent on the simple protocol, which has no plan cache (with parameters, force_generic_plan
 * would apply even to an unnamed statement). Integers and null only, so the text cannot carry
 * anything but numbers; anything else throws.
 */
export function plannedPerCall(text: string, values: readonly unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const v = values[Number(n) - 1];
    if (v === null) return 'null';
    if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
    throw new TypeError(`plannedPerCall takes integers and null, got ${typeof v} for $${n}`);
  });
}
