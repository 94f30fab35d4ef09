// The normal forms of identities: an email's, and a username's look (its skeleton, below).
import unhomoglyph from 'unhomoglyph';

// The one normal form of an email address, used wherever two addresses are compared: the login
// limiter's key (http/rate-limit.ts) and the account lookup (users/users.repository.ts, the
// `email_key` column). Both sides are computed here, in JavaScript, never by PostgreSQL's lower():
// the two case mappings differ (lower('İ') is 'i' in PostgreSQL, 'i̇' in JavaScript), and two
// normal forms let one account be reached under two limiter keys (issue 24 item 4).
// NFKC first, so compatibility forms (the ligature 'ﬁ', fullwidth letters) are one address with
// their plain spelling; then the default Unicode lowercase mapping, the same on every machine.
export function emailKey(email: string): string {
  return email.normalize('NFKC').toLowerCase();
}

/**
 * What a username looks like: two names with one skeleton are one name (users.username_skeleton,
 * unique; the second is 409). The skeleton of Unicode's UTS #39 ("Unicode Security Mechanisms"):
 * NFD, each character replaced by its prototype in the confusables table, NFD again; here from
 * `unhomoglyph`, which carries that table (6,311 entries). Then lowercased and mapped once more, so
 * 'Alice' and 'alice', and 'I' beside 'l', are one look too. All-Cyrillic 'сосоа' and Latin
 * 'cocoa', 'rnike' and 'mike', 'user0' and 'usero' share a skeleton; the mixed-script rule
 * (users/username.ts) refuses what mixes alphabets before it gets here.
 */
export function usernameSkeleton(username: string): string {
  const skeleton = (s: string) => unhomoglyph(s.normalize('NFD')).normalize('NFD');
  return skeleton(skeleton(username).toLowerCase());
}
