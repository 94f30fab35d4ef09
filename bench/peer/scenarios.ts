// The peer mode's scenarios: what every RealWorld implementation serves alike, drawn with the
// main bench's distributions (bench/scenarios.ts) from each target's own catalog. The catalogs
// list the same articles in the same order (by plan index), so the same seed picks the same
// articles, users and pages on every target: only slugs and tokens differ.
import { buildRequests, type BenchRequest, type Scenario, type ScenarioInput } from '../scenarios.ts';

type Mix = Scenario['mix'];

const READ_ANON = [
  [35, 'list'], // global list, pages with offsets
  [15, 'list-tag'],
  [10, 'list-author'],
  [25, 'article'],
  [8, 'tags'],
  [7, 'profile'],
] as const satisfies Mix;

export interface PeerScenario extends Scenario {
  /** Each favorite is followed by the same user's unfavorite of the same article. */
  readonly pairs?: boolean;
}

const scenario = (name: string, description: string, auth: boolean, mix: Mix, pairs = false): PeerScenario => ({
  name,
  description,
  auth,
  inDefaultRun: true,
  mix,
  pairs,
});

/** In the order they run: writes last, since a peer's database is not reset between scenarios. */
export const PEER_SCENARIOS: Readonly<Record<string, PeerScenario>> = {
  'read-anon': scenario(
    'read-anon',
    'anonymous reads: 60% article lists (pages with offsets, by tag, by author), 25% single articles, tags, profiles',
    false,
    READ_ANON,
  ),
  'read-auth': scenario('read-auth', 'the same reads as logged-in users, plus 15% their feeds', true, [
    ...READ_ANON.map(([w, k]) => [w * 0.85, k] as const),
    [15, 'feed'],
  ]),
  list: scenario('list', 'article list pages: global with offsets, by tag, by author', false, [
    [60, 'list'],
    [25, 'list-tag'],
    [15, 'list-author'],
  ]),
  article: scenario('article', 'GET /api/articles/:slug, anonymous', false, [[100, 'article']]),
  write: scenario(
    'write',
    'writes as logged-in users: favorite/unfavorite pairs (same user, same article), 20% new comments',
    true,
    [
      [40, 'favorite'],
      [20, 'add-comment'],
    ],
    true,
  ),
};

export function selectPeerScenarios(names: readonly string[] | undefined): string[] {
  if (!names) return Object.keys(PEER_SCENARIOS);
  for (const n of names) {
    if (!(n in PEER_SCENARIOS)) throw new Error(`unknown peer scenario "${n}"; known: ${Object.keys(PEER_SCENARIOS).join(', ')}`);
  }
  // Always in the table's order (writes last), whatever the command line's.
  return Object.keys(PEER_SCENARIOS).filter((n) => names.includes(n));
}

/** The scenario's request list on one target. */
export function peerRequests(s: PeerScenario, input: ScenarioInput, seed: number, size = 4000): BenchRequest[] {
  const drawn = buildRequests(s, input, seed, s.pairs ? Math.ceil(size / 1.5) : size);
  if (!s.pairs) return drawn;
  const out: BenchRequest[] = [];
  for (const r of drawn) {
    out.push(r);
    if (r.kind === 'favorite') out.push({ ...r, kind: 'unfavorite', method: 'DELETE' });
  }
  return out.slice(0, size);
}
