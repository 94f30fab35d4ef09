// The business operation behind each route, named as a person would say it: the span that a
// trace shows under the HTTP request (STYLE.md: spans named after business operations, not only
// after routes). One table, so the routes stay free of tracing code; a route missing here gets
// no operation span (its request span and SQL spans are still there).
const OPERATIONS: Readonly<Record<string, string>> = {
  'GET /api/articles': 'list articles',
  'GET /api/articles/feed': 'load article feed',
  'GET /api/articles/:slug': 'load article',
  'POST /api/articles': 'create article',
  'PUT /api/articles/:slug': 'update article',
  'DELETE /api/articles/:slug': 'delete article',
  'POST /api/articles/:slug/favorite': 'favorite article',
  'DELETE /api/articles/:slug/favorite': 'unfavorite article',
  'GET /api/articles/:slug/comments': 'list comments',
  'POST /api/articles/:slug/comments': 'add comment',
  'DELETE /api/articles/:slug/comments/:id': 'delete comment',
  'GET /api/profiles/:username': 'load profile',
  'POST /api/profiles/:username/follow': 'follow user',
  'DELETE /api/profiles/:username/follow': 'unfollow user',
  'GET /api/tags': 'list tags',
  'POST /api/users/login': 'log in',
  'POST /api/users': 'register user',
  'GET /api/user': 'load current user',
  'PUT /api/user': 'update current user',
};

export function operationName(method: string, url: string): string | undefined {
  return OPERATIONS[`${method} ${url}`];
}

/** Every route with an operation (the test checks each exists in the app). */
export function operationRoutes(): { method: string; url: string; name: string }[] {
  return Object.entries(OPERATIONS).map(([key, name]) => {
    const [method, url] = key.split(' ') as [string, string];
    return { method, url, name };
  });
}
