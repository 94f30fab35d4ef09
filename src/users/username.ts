// What a username may be (docs/api.md, "Identities: one normal form"): a name shown beside
// everything its user writes, and the key of profiles and the author= filter, so two names a
// reader cannot tell apart must not be two users (issue 24 item 5). Stored in NFC, so 'e' + U+0301
// and 'é' are one name (the unique constraint then refuses the second). Refused, with the reason
// as the 422 message: whitespace at either end, control and invisible formatting characters
// (zero-width spaces and joiners, bidirectional controls such as U+202E), and letters of more than
// one script in one name (Latin 'a' and Cyrillic 'а' look the same). ASCII letters, digits, '_',
// '-', '.' and names in any one alphabet stay valid: the RealWorld suites register `auth_<id>`.
// A name that passes but looks like one in use (same skeleton, lib/identity.ts) is refused by
// the unique users.username_skeleton, 409.
import { AppError } from '../http/errors.ts';

// Scripts a name's letters are counted in. Han, Hiragana, Katakana, Hangul and Bopomofo are one
// group: Japanese, Korean and Chinese names mix them by nature.
const SCRIPTS: [string, RegExp][] = [
  ['Latin', /\p{Script=Latin}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
  ['Greek', /\p{Script=Greek}/u],
  ['Armenian', /\p{Script=Armenian}/u],
  ['Georgian', /\p{Script=Georgian}/u],
  ['Hebrew', /\p{Script=Hebrew}/u],
  ['Arabic', /\p{Script=Arabic}/u],
  ['Devanagari', /\p{Script=Devanagari}/u],
  ['Thai', /\p{Script=Thai}/u],
  ['CJK', /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Bopomofo}]/u],
];

// Cc: control characters; Cf: formatting (zero-width, joiners, bidi controls, BOM); Zl/Zp: line
// and paragraph separators; Co/Cn: private use and unassigned, which render as anything.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}]/u;

export const USERNAME_MESSAGES = {
  edges: 'must not begin or end with whitespace',
  invisible: 'must not contain control, zero-width or bidirectional formatting characters',
  scripts: 'must use letters of one script only (not, e.g., Latin and Cyrillic together)',
} as const;

/** Why `name` is refused, or undefined. */
export function usernameProblem(name: string): string | undefined {
  if (/^\s|\s$/u.test(name)) return USERNAME_MESSAGES.edges;
  if (INVISIBLE.test(name)) return USERNAME_MESSAGES.invisible;
  const seen = new Set<string>();
  for (const ch of name) {
    // Letters of no script of their own (the modifier apostrophe U+02BC is Common) mix with any.
    if (!/\p{L}/u.test(ch) || /[\p{Script=Common}\p{Script=Inherited}]/u.test(ch)) continue;
    const script = SCRIPTS.find(([, re]) => re.test(ch))?.[0] ?? 'other';
    seen.add(script);
    if (seen.size > 1) return USERNAME_MESSAGES.scripts;
  }
  return undefined;
}

/** The name as stored and compared (NFC), or a 422 `{"errors":{"username":[reason]}}`. */
export function canonicalUsername(name: string): string {
  const nfc = name.normalize('NFC');
  const problem = usernameProblem(nfc);
  if (problem !== undefined) throw new AppError(422, { username: [problem] });
  return nfc;
}
