// Every parameterised statement is prepared once per connection, as SQLx's statement cache does.
//
// node-postgres sends the whole text with Parse on every call unless the query has a `name`, and
// PostgreSQL then parses and plans it again: four fifths of its work on the article read
// (pgbench on that statement: 7.7k tps with `-M extended`, 41k with `-M prepared`; BENCHMARKS.md).
// With a name, pg parses once per connection and afterwards sends only Bind/Execute.
//
// The name is derived from the text here, in the one client class the pool creates, so a
// repository writes plain SQL and cannot give two texts one name (pg refuses that) or forget it.
// Statements without parameters (`begin`, `commit`, `savepoint`, `select 1`) stay on the simple
// protocol: one message, nothing to plan worth keeping.
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
import pg from 'pg';

/**
 * Distinct statement texts named so far. The SQL is written in the repositories, so the number of
 * texts is small and fixed (the list filters combine into at most 32 shapes); the bound only
 * guards against a future caller building SQL with values inlined, whose texts would then run
 * unprepared instead of growing every connection's statement cache without end.
 */
export const MAX_NAMED_STATEMENTS = 500;

const names = new Map<string, string>();

/** The prepared statement's name for this text; undefined past the bound. */
export function statementName(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED_STATEMENTS) names.set(text, (name = `conduit_${names.size + 1}`));
  return name;
}

interface QueryConfig {
  text: string;
  values?: unknown[];
  name?: string;
}

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

function isPlainConfig(config: unknown): config is QueryConfig {
  return (
    typeof config === 'object' &&
    config !== null &&
    typeof (config as { text?: unknown }).text === 'string' &&
    typeof (config as { submit?: unknown }).submit !== 'function'
  );
}

/** The config to send: named when it has parameters and no name of its own. */
export function withStatementName(config: unknown, values: unknown): unknown {
  if (typeof config === 'string') {
    if (!Array.isArray(values) || values.length === 0) return config;
    const name = statementName(config);
    return name === undefined ? config : { name, text: config };
  }
  if (!isPlainConfig(config) || config.name !== undefined) return config;
  const params = values ?? config.values;
  if (!Array.isArray(params) || params.length === 0) return config;
  const name = statementName(config.text);
  return name === undefined ? config : { ...config, name };
}

/** The pool's client class: pg.Client with every parameterised statement named (see above). */
export class PreparingClient extends pg.Client {
  // pg's query() has many overloads (string, config, submittable; promise or callback); this
  // only swaps the first argument and hands every form on unchanged.
  override query(...args: unknown[]): never {
    args[0] = withStatementName(args[0], typeof args[1] === 'function' ? undefined : args[1]);
    return (super.query as (...a: unknown[]) => never)(...args);
  }
}
