-- A random key per user, carried in every token issued for that user (src/http/auth.ts): a token
-- is valid only while its key is the user's current one. A new user row has a new key, even
-- with an id that an earlier row had (after `seed --reset`), and a password change replaces it,
-- revoking every token issued before. Tokens issued before this migration carry no key: their
-- users log in again.
alter table users add column token_key uuid not null default gen_random_uuid();
