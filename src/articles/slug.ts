// Slugs: readable, URL-safe, unique. Letters and digits of any script survive (a Japanese title
// keeps its characters); accents are folded; everything else becomes single hyphens.
import { randomBytes } from 'node:crypto';

const MAX_BASE = 80;
// GET /api/articles/feed is a route of its own: an article slugged "feed" could never be read.
const RESERVED = new Set(['feed']);

export function slugify(title: string): string {
  const folded = title
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '');
  // Cut by code points, not UTF-16 units: `.slice` could split a surrogate pair (a letter
  // outside the BMP), which PostgreSQL would store as U+FFFD in the slug.
  const base = Array.from(folded).slice(0, MAX_BASE).join('').replace(/-+$/, '');
  if (base === '') return 'article';
  return RESERVED.has(base) ? `${base}-article` : base;
}

/** The slug for a title whose plain slug is taken: a short random suffix keeps it readable. */
export function withSuffix(base: string): string {
  return `${base}-${randomBytes(5).toString('hex')}`;
}
