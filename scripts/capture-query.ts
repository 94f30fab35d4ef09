// A statement as Conduit sends it, taken from the function that sends it (for the scripts that
// replay Conduit's own SQL through other clients: driver-compare.ts, favorite-pgbench.ts).
import type { Queryable } from '../src/db/pool.ts';

/** The first query `send` makes, answered with no rows. */
export async function captureQuery(send: (db: Queryable) => Promise<unknown>): Promise<{ text: string; values: unknown[] }> {
  let captured: { text: string; values: unknown[] } | undefined;
  const db = {
    query: (text: string, values: unknown[]) => {
      captured ??= { text, values };
      return Promise.resolve({ rows: [], rowCount: 0 });
    },
  } as unknown as Queryable;
  await send(db);
  if (!captured) throw new Error('the function sent no query');
  return captured;
}
