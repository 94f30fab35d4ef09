// flagOffsets and setFlags: a viewer's flags applied to the stored anonymous bytes must give
// exactly the bytes that serializing the page with those flags gives, and must never touch user text.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { flagOffsets, setFlags } from './flag-bytes.ts';

/** The body as the viewer sees it; undefined when its flags and the arrays disagree. */
function withViewerFlags(body: Buffer, favorited: readonly boolean[], following: readonly boolean[]): Buffer | undefined {
  const changed = flagOffsets(body, favorited, following);
  return changed && setFlags(body, changed);
}

type Item = { title: string; favorited: boolean; author: { username: string; following: boolean } };

const page = (flags: readonly [boolean, boolean][], titles: readonly string[]) => ({
  articles: titles.map((title, i): Item => ({
    title,
    favorited: flags[i]?.[0] ?? false,
    author: { username: `u${i}`, following: flags[i]?.[1] ?? false },
  })),
  articlesCount: titles.length,
});

describe('flagOffsets and setFlags', () => {
  // User text that looks like the keys: JSON escapes its quotes, so it must stay as it is.
  const titles = ['plain', '"favorited":false', 'say "following":false here', '\\"favorited\\":false', 'ünïcødé 🚀'];
  const anonymous = Buffer.from(JSON.stringify(page([], titles)));

  test('gives the bytes of the page serialized with the flags, for every combination on a small page', () => {
    const n = titles.length;
    for (let mask = 0; mask < 1 << (2 * n); mask += 7) {
      const flags = titles.map((_, i) => [(mask >> (2 * i)) & 1, (mask >> (2 * i + 1)) & 1].map(Boolean) as [boolean, boolean]);
      const got = withViewerFlags(
        anonymous,
        flags.map((f) => f[0]),
        flags.map((f) => f[1]),
      );
      assert.equal(got?.toString(), JSON.stringify(page(flags, titles)), `mask ${mask}`);
    }
  });

  test('all false: the stored body itself, no copy', () => {
    const none = titles.map(() => false);
    assert.equal(withViewerFlags(anonymous, none, none), anonymous);
  });

  test('a body with a different number of flags than expected: undefined (the caller serializes)', () => {
    assert.equal(withViewerFlags(anonymous, [true], [true]), undefined);
    assert.equal(withViewerFlags(Buffer.from('{"profile":{"username":"x","following":false}}'), [true], [true]), undefined);
    assert.equal(
      withViewerFlags(Buffer.from('{"profile":{"username":"x","following":false}}'), [], [true])?.toString(),
      '{"profile":{"username":"x","following":true}}',
    );
  });
});
