// A viewer's flags applied to a cached entry's bytes (the sets come from cache/viewer-flags.ts).
//
// A cached entry's body is what an anonymous viewer gets: every `"favorited"` and `"following"`
// in it is false. Rebuilding and serializing the page for a viewer with some of them true costs
// object spreads, toListItem and the serializer: a third of a 20-article page's CPU and most of
// its allocations (`npm run profile -- --scenario list-auth`). Instead, the bytes are copied with
// those `false`s replaced by `true`. The keys can only appear as keys: inside a
// string value JSON escapes the quote (`\"favorited\":false`), so the byte sequence
// `"favorited":false` never matches user text. The offsets are found once per body.

const FAVORITED = Buffer.from('"favorited":false');
const FOLLOWING = Buffer.from('"following":false');
/** Both keys are as long: the value starts this many bytes after the match. */
const VALUE_AT = FAVORITED.length - 'false'.length;
const TRUE = Buffer.from('true');

interface FlagOffsets {
  favorited: number[];
  following: number[];
}

const offsetsOf = new WeakMap<Buffer, FlagOffsets>();

function find(body: Buffer, needle: Buffer): number[] {
  const at: number[] = [];
  for (let i = body.indexOf(needle); i !== -1; i = body.indexOf(needle, i + needle.length)) at.push(i + VALUE_AT);
  return at;
}

/**
 * Where `body`'s `false`s are to be set to true for this viewer: the i-th `"favorited":false`
 * where `favorited[i]`, and the same for `"following"`; sorted, empty when none is. Undefined
 * when the body does not hold exactly as many of each key as the arrays are long (a serializer
 * that changed shape): the caller then loads the viewer's response (cache/cached-read.ts).
 */
export function flagOffsets(body: Buffer, favorited: readonly boolean[], following: readonly boolean[]): number[] | undefined {
  let offsets = offsetsOf.get(body);
  if (!offsets) offsetsOf.set(body, (offsets = { favorited: find(body, FAVORITED), following: find(body, FOLLOWING) }));
  if (offsets.favorited.length !== favorited.length || offsets.following.length !== following.length) return undefined;
  const changed: number[] = [];
  for (let i = 0; i < favorited.length; i++) if (favorited[i]) changed.push(offsets.favorited[i]!);
  for (let i = 0; i < following.length; i++) if (following[i]) changed.push(offsets.following[i]!);
  return changed.sort((a, b) => a - b);
}

/** A copy of `body` with the `false` at each of `changed` (flagOffsets) set to true. */
export function setFlags(body: Buffer, changed: readonly number[]): Buffer {
  if (changed.length === 0) return body;
  const parts: Buffer[] = [];
  let from = 0;
  for (const at of changed) {
    parts.push(body.subarray(from, at), TRUE);
    from = at + 'false'.length;
  }
  parts.push(body.subarray(from));
  return Buffer.concat(parts, body.length - changed.length);
}
