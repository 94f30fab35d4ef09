// The layers of src/ (docs/architecture.md), checked by `npm run lint` with dependency-cruiser.
// Type-only imports count (tsPreCompilationDeps): a cycle through `import type` still ties the
// modules' changes together, and a layer that names a higher one's types depends on it.
//
// Bottom to top: foundation (config.ts, runtime.ts, lib/) → db/ → http/ (the HTTP kit every route
// declares itself with) → the resources → app.ts and app-context.ts (the composition) → main.ts.
// cache/ and telemetry/ are adapters beside the resources: they import no resource. context.ts
// holds the context's types only, for any layer from http's users up.
const RESOURCES = '^src/(articles|comments|profiles|tags|users|health|docs)/';
const FOUNDATION = '^src/(config|runtime)\\.ts$|^src/(config|lib)/';
const ADAPTERS = '^src/(cache|telemetry)/';
const COMPOSITION = '^src/(app|app-context|main)\\.ts$';
const notTests = '\\.test\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles, type-only imports included.',
      from: { pathNot: notTests },
      to: { circular: true },
    },
    {
      name: 'foundation-imports-nothing-above',
      severity: 'error',
      comment: 'config.ts (and its areas in config/), runtime.ts and lib/ are the bottom layer: they import only each other.',
      from: { path: FOUNDATION, pathNot: notTests },
      to: { path: '^src/', pathNot: FOUNDATION },
    },
    {
      name: 'db-imports-only-foundation',
      severity: 'error',
      comment: 'db/ sits on the foundation alone: errors it raises are its own, mapped to statuses by http/errors.ts.',
      from: { path: '^src/db/', pathNot: notTests },
      to: { path: '^src/', pathNot: `${FOUNDATION}|^src/db/` },
    },
    {
      name: 'http-kit-below-resources',
      severity: 'error',
      comment:
        'http/ is the kit the resources build routes with (errors, auth, schemas, validation, compression, rate limits, shedding, security headers): it imports foundation, db/ and itself only, not the context types (which name resources), adapters or anything above.',
      from: { path: '^src/http/', pathNot: notTests },
      to: { path: '^src/', pathNot: `${FOUNDATION}|^src/db/|^src/http/` },
    },
    {
      name: 'adapters-import-no-resource',
      severity: 'error',
      comment: 'cache/ and telemetry/ adapt libraries and infrastructure to the app; they know no resource and nothing of the composition.',
      from: { path: ADAPTERS, pathNot: notTests },
      to: { path: `${RESOURCES}|${COMPOSITION}` },
    },
    {
      name: 'resources-below-composition',
      severity: 'error',
      comment: 'A resource is wired in by app.ts; it never imports the composition or main.',
      from: { path: RESOURCES, pathNot: notTests },
      to: { path: COMPOSITION },
    },
    {
      name: 'context-types-only',
      severity: 'error',
      comment: 'context.ts holds types only, so naming the context depends on no construction (that is app-context.ts).',
      from: { path: '^src/context\\.ts$' },
      to: { dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'only-main-above-app',
      severity: 'error',
      comment: 'main.ts is the top: nothing in src/ imports it; app.ts is imported by main.ts alone.',
      from: { path: '^src/', pathNot: `^src/main\\.ts$|${notTests}` },
      to: { path: '^src/(main|app)\\.ts$' },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/db/migrations/' },
    includeOnly: '^src/',
  },
};
