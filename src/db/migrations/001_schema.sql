-- The RealWorld schema. Invariants live here, not in application code:
-- unique constraints (mapped to 409 by name), cascades (deleting an article removes its
-- comments, favorites and tag links), and a favorites counter that cannot go negative.

create table users (
  id            bigint generated always as identity primary key,
  username      text not null,
  email         text not null,
  password_hash text not null,
  bio           text,
  image         text,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint users_username_key unique (username)
);
-- Emails compare case-insensitively: Alice@x.io and alice@x.io are one account.
create unique index users_email_key on users (lower(email));

create table follows (
  follower_id bigint not null references users (id) on delete cascade,
  followee_id bigint not null references users (id) on delete cascade,
  created_at  timestamptz not null default now(),
  primary key (follower_id, followee_id)
);
-- "who follows X" (profile deletion, counts); the primary key already serves the feed.
create index follows_followee_idx on follows (followee_id);

create table articles (
  id              bigint generated always as identity primary key,
  slug            text not null,
  title           text not null,
  description     text not null,
  body            text not null,
  author_id       bigint not null references users (id) on delete cascade,
  favorites_count integer not null default 0 check (favorites_count >= 0),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint articles_slug_key unique (slug)
);
-- Lists are newest first with id as the tie-break: these serve the global list and the
-- author filter / feed (author_id = any(followed)) without a sort.
create index articles_created_idx on articles (created_at desc, id desc);
create index articles_author_created_idx on articles (author_id, created_at desc, id desc);

create table tags (
  id   integer generated always as identity primary key,
  name text not null,
  constraint tags_name_key unique (name)
);

create table article_tags (
  article_id bigint  not null references articles (id) on delete cascade,
  tag_id     integer not null references tags (id) on delete cascade,
  primary key (article_id, tag_id)
);
-- The tag filter goes tag -> articles.
create index article_tags_tag_idx on article_tags (tag_id, article_id);

create table favorites (
  user_id    bigint not null references users (id) on delete cascade,
  article_id bigint not null references articles (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (user_id, article_id)
);
-- Cascade deletes of an article and "who favorited" go article -> users.
create index favorites_article_idx on favorites (article_id);

create table comments (
  id         bigint generated always as identity primary key,
  article_id bigint not null references articles (id) on delete cascade,
  author_id  bigint not null references users (id) on delete cascade,
  body       text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index comments_article_idx on comments (article_id, created_at desc, id desc);
create index comments_author_idx on comments (author_id);
