-- The email's one normal form (src/lib/identity.ts: NFKC, then Unicode lowercase), computed by the
-- service and looked up by equality, so the login limiter's key and the account it reaches are
-- one-to-one (issue 24 item 4). Expand step: a nullable column the previous release ignores. The
-- backfill is PostgreSQL's closest equivalent; it differs from the service's only for the few
-- letters whose case mappings differ (U+0130), and the service writes its own form on every insert
-- and email change. users_email_key (lower(email)) stays: it keeps refusing 'A@x' beside 'a@x'.
alter table users add column email_key text;
update users set email_key = lower(normalize(email, NFKC));
create unique index users_email_key_nf on users (email_key);
