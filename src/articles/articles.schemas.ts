// Request and response schemas for articles: the single source of validation, serialization,
// the OpenAPI document and the handler types.
import { Type } from 'typebox';
import { NonBlank, Profile, Timestamp } from '../http/schemas.ts';

const Tag = NonBlank(64);
// Bounded so a single request cannot create thousands of tags.
const TagList = Type.Array(Tag, { maxItems: 32 });

const articleFields = {
  slug: Type.String(),
  title: Type.String(),
  description: Type.String(),
  tagList: Type.Array(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  favorited: Type.Boolean(),
  favoritesCount: Type.Integer(),
  author: Profile,
};

export const Article = Type.Object({ ...articleFields, body: Type.String() });
/** List items carry no `body` (SPEC.md "Shapes"): the serializer drops it. */
export const ArticleListItem = Type.Object(articleFields);

export const ArticleResponse = Type.Object({ article: Article });
export const ArticleListResponse = Type.Object({
  articles: Type.Array(ArticleListItem),
  articlesCount: Type.Integer(),
});

export const SlugParams = Type.Object({ slug: Type.String({ minLength: 1, maxLength: 256 }) });

export const CreateArticleBody = Type.Object({
  article: Type.Object(
    {
      title: NonBlank(256),
      description: NonBlank(1024),
      body: NonBlank(262_144),
      tagList: Type.Optional(TagList),
    },
    { additionalProperties: false },
  ),
});

export const UpdateArticleBody = Type.Object({
  article: Type.Object(
    {
      title: Type.Optional(NonBlank(256)),
      description: Type.Optional(NonBlank(1024)),
      body: Type.Optional(NonBlank(262_144)),
      // absent keeps the tags, [] clears them, null is rejected (SPEC.md "Rules").
      tagList: Type.Optional(TagList),
    },
    { additionalProperties: false },
  ),
});

const Filter = Type.Optional(Type.String({ maxLength: 256 }));
// `limit` is capped: an unbounded page is an unbounded response. Offsets past 100,000 would scan
// that many index entries for a page nobody reads; they are refused rather than served slowly.
const Limit = Type.Integer({ minimum: 1, maximum: 100, default: 20 });
const Offset = Type.Integer({ minimum: 0, maximum: 100_000, default: 0 });

export const ListQuery = Type.Object({ tag: Filter, author: Filter, favorited: Filter, limit: Limit, offset: Offset });
export const FeedQuery = Type.Object({ limit: Limit, offset: Offset });
