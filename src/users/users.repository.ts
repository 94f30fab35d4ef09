// SQL for users. Uniqueness is enforced by the database (users_username_key, users_email_key,
// users_email_key_nf, users_username_skeleton): an insert or update that collides raises 23505,
// which the error mapper turns into 409.
import type { Queryable } from '../db/pool.ts';
import { emailKey, usernameSkeleton } from '../lib/identity.ts';

export interface UserRow {
  id: number;
  username: string;
  email: string;
  password_hash: string;
  bio: string | null;
  image: string | null;
  /** Carried in every token issued for this user (http/auth.ts); replaced on a password change. */
  token_key: string;
}

const COLUMNS = 'id, username, email, password_hash, bio, image, token_key';

export async function insertUser(db: Queryable, user: { username: string; email: string; passwordHash: string }): Promise<UserRow> {
  const res = await db.query<UserRow>(
    `insert into users (username, username_skeleton, email, email_key, password_hash) values ($1, $2, $3, $4, $5) returning ${COLUMNS}`,
    [user.username, usernameSkeleton(user.username), user.email, emailKey(user.email), user.passwordHash],
  );
  return res.rows[0]!;
}

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | undefined> {
  const res = await db.query<UserRow>(`select ${COLUMNS} from users where email_key = $1`, [emailKey(email)]);
  return res.rows[0];
}

export async function findUserById(db: Queryable, id: number): Promise<UserRow | undefined> {
  const res = await db.query<UserRow>(`select ${COLUMNS} from users where id = $1`, [id]);
  return res.rows[0];
}

/** Stores a new hash of the same password; a password changed since `from` was read is left alone. */
export async function replacePasswordHash(db: Queryable, id: number, from: string, to: string): Promise<void> {
  await db.query('update users set password_hash = $3 where id = $1 and password_hash = $2', [id, from, to]);
}

export interface UserPatch {
  email?: string | undefined;
  username?: string | undefined;
  passwordHash?: string | undefined;
  /** undefined keeps the stored value; null or "" clears it. */
  bio?: string | null | undefined;
  image?: string | null | undefined;
}

/** Partial update in one statement; returns undefined when the user no longer exists. */
export async function updateUser(db: Queryable, id: number, patch: UserPatch): Promise<UserRow | undefined> {
  const res = await db.query<UserRow>(
    `update users set
       email         = coalesce($2, email),
       email_key     = coalesce($9, email_key),
       username      = coalesce($3, username),
       username_skeleton = coalesce($10, username_skeleton),
       password_hash = coalesce($4, password_hash),
       -- A new password revokes every token issued before it.
       token_key     = case when $4::text is null then token_key else gen_random_uuid() end,
       bio           = case when $5::boolean then nullif($6, '') else bio end,
       image         = case when $7::boolean then nullif($8, '') else image end,
       updated_at    = now()
     where id = $1
     returning ${COLUMNS}`,
    [
      id,
      patch.email ?? null,
      patch.username ?? null,
      patch.passwordHash ?? null,
      patch.bio !== undefined,
      patch.bio ?? null,
      patch.image !== undefined,
      patch.image ?? null,
      patch.email === undefined ? null : emailKey(patch.email),
      patch.username === undefined ? null : usernameSkeleton(patch.username),
    ],
  );
  return res.rows[0];
}

/**
 * Fills users.username_skeleton where it is null: names written before the column existed that
 * its migration could not compute in SQL (non-ASCII ones: the confusables data is not in
 * PostgreSQL), and rows inserted by an older release. Run after the migrations (main.ts,
 * scripts/migrate.ts); each row is set only while still null, so concurrent runs agree. A name
 * that looks like one already holding its skeleton stays null: it keeps its name, and nobody
 * new can take that look.
 */
export async function fillUsernameSkeletons(db: Queryable): Promise<{ filled: number; lookAlikes: number }> {
  let filled = 0;
  let lookAlikes = 0;
  let after = 0;
  for (;;) {
    const batch = await db.query<{ id: number; username: string }>(
      'select id, username from users where username_skeleton is null and id > $1 order by id limit 500',
      [after],
    );
    for (const { id, username } of batch.rows) {
      try {
        const res = await db.query('update users set username_skeleton = $2 where id = $1 and username_skeleton is null', [
          id,
          usernameSkeleton(username),
        ]);
        filled += res.rowCount ?? 0;
      } catch (err) {
        if ((err as { code?: string }).code !== '23505') throw err;
        lookAlikes++;
      }
    }
    if (batch.rows.length < 500) return { filled, lookAlikes };
    after = batch.rows.at(-1)!.id;
  }
}
