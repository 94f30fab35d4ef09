-- The email's one normal form (src/lib/identity.ts: NFKC, then Unicode lowercase), computed by the
-- service and looked up by equality, so the login limiter's key and the account it reaches are
-- one-to-one (issue 24 item 4). Expand step: a column the previous release ignores.
--
-- The service writes its own form on every insert and email change. Rows written without one (the
-- previous release during a deploy, the seed script, a psql session) get lower(email) from the
-- trigger, as does the backfill: not normalize(), which fails on a database whose encoding is not
-- UTF8 (the embedded one of `npm start`). It differs from the service's form only for non-ASCII
-- addresses (compatibility forms, U+0130), whose owners then log in under the spelling they
-- registered with. users_email_key (lower(email)) stays: it keeps refusing 'A@x' beside 'a@x'.
alter table users add column email_key text;
update users set email_key = lower(email);
create unique index users_email_key_nf on users (email_key);

create function users_email_key() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    new.email_key := coalesce(new.email_key, lower(new.email));
  elsif new.email is distinct from old.email and new.email_key is not distinct from old.email_key then
    new.email_key := lower(new.email);
  end if;
  return new;
end $$;
create trigger users_email_key before insert or update on users for each row execute function users_email_key();
