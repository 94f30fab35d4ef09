-- The username's look (src/users/username.ts usernameSkeleton: the UTS #39 confusable skeleton,
-- case-folded), computed by the service on every insert and rename, unique: two names a reader
-- cannot tell apart ('alice', 'Alice', all-Cyrillic 'аlice' with a Latin 'l' aside, 'rnike' and
-- 'mike') are one name, and the second is refused 409. Expand step: a column the previous release
-- ignores (its inserts leave it null, which the unique index does not compare).
--
-- The backfill computes the skeleton of plain ASCII names in SQL (for those it is lowercase with
-- 'I' and '1' read as 'l', '0' as 'o', 'm' as 'rn': the mapping's only entries in that set), once
-- per look: of existing look-alikes the oldest keeps the name's look, the others stay null (they
-- keep their names; nobody new can take their look, which the oldest holds). Other names stay
-- null until renamed: the confusables data is not in PostgreSQL.
alter table users add column username_skeleton text;
create unique index users_username_skeleton on users (username_skeleton);

with ascii as (
  select id, replace(translate(lower(translate(username, 'I', 'l')), '01', 'ol'), 'm', 'rn') as skeleton
    from users
   where username ~ '^[A-Za-z0-9_. -]+$'
), oldest as (
  select distinct on (skeleton) id, skeleton from ascii order by skeleton, id
)
update users u set username_skeleton = oldest.skeleton from oldest where u.id = oldest.id;
