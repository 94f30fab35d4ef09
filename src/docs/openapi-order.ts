// The order of the OpenAPI document, which is the order /docs shows: the API a client calls
// first, the endpoints an operator scrapes and probes last.

/** Every operation's tag, in reading order (the contract's resources, then ours). */
export const DOC_TAGS = ['User and Authentication', 'Profile', 'Articles', 'Comments', 'Favorites', 'Tags', 'Operations'] as const;

const OPERATIONS = 'Operations';

/**
 * The same paths with those whose operations are all tagged Operations moved to the end, each
 * group keeping its order. Untagged paths count as API paths.
 */
export function operationsLast<T>(paths: Record<string, T>): Record<string, T> {
  const isOperations = (item: T) => {
    const ops = Object.values(item as Record<string, { tags?: unknown }>).filter(
      (op) => op !== null && typeof op === 'object' && Array.isArray(op.tags),
    );
    return ops.length > 0 && ops.every((op) => (op.tags as unknown[]).includes(OPERATIONS));
  };
  const entries = Object.entries(paths);
  return Object.fromEntries([...entries.filter(([, item]) => !isOperations(item)), ...entries.filter(([, item]) => isOperations(item))]);
}
