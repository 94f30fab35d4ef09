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
