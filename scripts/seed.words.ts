// Word lists for the demo data. Order matters: tags are ranked by popularity in list order (the
// first is the most used), and changing any list changes the generated data for every seed.

export const FIRST_NAMES = [
  'Ada', 'Alan', 'Amara', 'Anders', 'Aiko', 'Bea', 'Boris', 'Carmen', 'Chen', 'Dana', 'Dmitri',
  'Elif', 'Emeka', 'Farah', 'Felix', 'Grace', 'Hana', 'Hugo', 'Ines', 'Ivan', 'Jamal', 'Jin',
  'Kai', 'Karin', 'Leila', 'Linus', 'Lucia', 'Malik', 'Mei', 'Mateo', 'Nadia', 'Niko', 'Noor',
  'Olga', 'Omar', 'Priya', 'Quinn', 'Rafael', 'Rin', 'Rosa', 'Sami', 'Sofia', 'Sven', 'Tariq',
  'Tess', 'Uma', 'Viktor', 'Wen', 'Xavier', 'Yara', 'Yusuf', 'Zoe', 'Zainab', 'Marta', 'Pablo',
  'Lena', 'Tomas', 'Aisha', 'Ravi', 'Ingrid',
] as const;

export const LAST_NAMES = [
  'Abe', 'Adeyemi', 'Alvarez', 'Andersen', 'Bauer', 'Becker', 'Chen', 'Costa', 'Dubois', 'Eriksen',
  'Fischer', 'Garcia', 'Gupta', 'Haddad', 'Hansen', 'Ito', 'Ivanova', 'Jensen', 'Kim', 'Kowalski',
  'Kumar', 'Larsen', 'Lee', 'Lopez', 'Martin', 'Meyer', 'Moreau', 'Nakamura', 'Nguyen', 'Novak',
  'Okafor', 'Olsen', 'Patel', 'Petrov', 'Quispe', 'Rossi', 'Santos', 'Sato', 'Schmidt', 'Silva',
  'Singh', 'Smith', 'Suzuki', 'Tanaka', 'Torres', 'Varga', 'Wagner', 'Wang', 'Weber', 'Yilmaz',
  'Young', 'Zhang', 'Zimmermann', 'Oliveira', 'Kaya', 'Horvat', 'Murphy', 'Walsh', 'Berg', 'Lund',
] as const;

export const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net'] as const;

export const ROLES = [
  'Backend engineer', 'Frontend developer', 'Site reliability engineer', 'Data engineer',
  'Engineering manager', 'Student', 'Open source maintainer', 'Security researcher',
  'Platform engineer', 'Freelance developer', 'Database administrator', 'Mobile developer',
] as const;

export const INTERESTS = [
  'distributed systems', 'type systems', 'good coffee', 'query planners', 'mechanical keyboards',
  'observability', 'functional programming', 'climbing', 'compilers', 'developer experience',
  'load testing', 'old computers', 'writing docs', 'chess', 'caching strategies', 'trail running',
] as const;

// Tags, most used first. Lowercase, as the RealWorld front ends show them.
export const TAGS = [
  'javascript', 'typescript', 'node', 'react', 'postgres', 'webdev', 'programming', 'python',
  'devops', 'rust', 'go', 'css', 'performance', 'testing', 'security', 'docker', 'kubernetes',
  'aws', 'database', 'api', 'tutorial', 'beginners', 'architecture', 'career', 'opensource',
  'linux', 'git', 'frontend', 'backend', 'vue', 'svelte', 'angular', 'nextjs', 'graphql', 'rest',
  'sql', 'redis', 'caching', 'observability', 'monitoring', 'logging', 'tracing', 'microservices',
  'serverless', 'cloud', 'terraform', 'ci', 'productivity', 'design', 'ux', 'accessibility',
  'html', 'java', 'kotlin', 'swift', 'android', 'ios', 'flutter', 'dotnet', 'csharp', 'cpp',
  'elixir', 'erlang', 'haskell', 'scala', 'clojure', 'ruby', 'rails', 'php', 'laravel',
  'django', 'fastapi', 'fastify', 'express', 'deno', 'bun', 'webassembly', 'machinelearning',
  'ai', 'datascience', 'algorithms', 'datastructures', 'concurrency', 'networking', 'http',
  'tls', 'oauth', 'jwt', 'cryptography', 'compilers', 'vim', 'emacs', 'vscode', 'shell', 'bash',
  'nginx', 'kafka', 'rabbitmq', 'elasticsearch', 'mongodb', 'sqlite', 'mysql', 'orm', 'migrations',
  'refactoring', 'codereview', 'agile', 'remote', 'hiring', 'interview', 'writing', 'books',
  'history', 'hardware', 'embedded', 'gamedev', 'math', 'showdev', 'discuss',
] as const;

export const TOPICS = [
  'Postgres', 'Node.js', 'TypeScript', 'React', 'Rust', 'Go', 'Kubernetes', 'Docker', 'Redis',
  'Kafka', 'GraphQL', 'Fastify', 'Linux', 'Git', 'CSS', 'WebAssembly', 'Python', 'Terraform',
  'SQLite', 'Nginx', 'OpenTelemetry', 'Prometheus', 'Svelte', 'Vue', 'Elixir', 'Deno', 'Bun',
  'HTTP/2', 'TLS', 'OAuth', 'JSON', 'Vim', 'Bash', 'Java', 'Kotlin', 'Swift', 'Haskell', 'Zig',
  'Erlang', 'Elasticsearch',
] as const;

export const THINGS = [
  'Connection Pool', 'Index', 'Cache', 'Query Plan', 'Migration', 'Test Suite', 'Build Pipeline',
  'Error Handler', 'Memory Leak', 'Event Loop', 'Worker Thread', 'Rate Limiter', 'Load Balancer',
  'Deployment', 'Feature Flag', 'Code Review', 'Dashboard', 'Alert', 'Schema', 'Transaction',
  'Deadlock', 'Race Condition', 'Retry Policy', 'Timeout', 'Health Check', 'Log Pipeline',
  'Dependency Tree', 'Type Checker', 'State Machine', 'Job Queue', 'Webhook', 'API Gateway',
  'Monorepo', 'Release Process', 'Flamegraph', 'Benchmark',
] as const;

export const ADJECTIVES = [
  'Fast', 'Boring', 'Reliable', 'Tiny', 'Practical', 'Pragmatic', 'Modern', 'Resilient',
  'Predictable', 'Hidden', 'Surprising', 'Safe', 'Simple', 'Observable', 'Scalable', 'Lazy',
  'Idempotent', 'Stateless', 'Concurrent', 'Careful', 'Underrated', 'Painless',
] as const;

export const VERBS = [
  'Scale', 'Debug', 'Profile', 'Test', 'Monitor', 'Secure', 'Refactor', 'Tune', 'Benchmark',
  'Migrate', 'Deploy', 'Design', 'Measure', 'Simplify', 'Cache', 'Shard', 'Document', 'Replace',
  'Harden', 'Untangle',
] as const;

export const GERUNDS = [
  'Running', 'Scaling', 'Debugging', 'Operating', 'Testing', 'Shipping', 'Maintaining',
  'Migrating', 'Profiling', 'Teaching', 'Rewriting', 'Building',
] as const;

export const NUMBERS = ['3', '5', '7', '10', '12', 'Four', 'Six', 'Eight'] as const;

/** Title templates: `{T}` topic, `{U}` a second topic, `{X}` thing, `{S}` things, `{A}` adjective (`{a}` in lower case), `{V}` verb, `{G}` gerund, `{N}` number. */
export const TITLE_TEMPLATES = [
  'How to {V} a {X} in {T}',
  '{A} {S} with {T}',
  'Why We Moved Our {X} from {T} to {U}',
  '{N} Lessons from {G} {T} {S} in Production',
  'A Gentle Introduction to {A} {T} {S}',
  '{T} {S}: {A} Patterns',
  'Debugging a {A} {X} in {T}',
  'What Nobody Tells You About {A} {S} in {T}',
  '{V} the {X}: Notes from {G} {T}',
  '{G} {T} at Scale: the {X}',
  'The {A} Guide to {T} {S}',
  '{T} vs {U}: Choosing a {X}',
  '{N} Ways to {V} Your {T} {X}',
  // Non-ASCII titles exercise slugify's folding (Über -> uber) and its non-Latin letters.
  'Über-{A} {S} in {T}',
  '{T}入門: {A} {X}',
  'Pourquoi {T} ? {X}, {U} et moi',
] as const;

export const SENTENCES = [
  'We started with a single {T} instance and a {X} that nobody owned.',
  'The {X} looked {a} until the traffic doubled on a Monday morning.',
  'Measure first: the flamegraph showed the {X} was not where the time went.',
  'A {a} {X} is easier to reason about than a clever one.',
  'The fix was three lines, and finding them took two weeks.',
  'Every {X} needs an owner, a dashboard and an alert that someone reads.',
  'We wrote a test that failed before the change and passed after it.',
  '{T} made the happy path easy; the unhappy path needed more thought.',
  'Timeouts belong at every boundary, not only at the load balancer.',
  'Read the query plan before adding another {X}.',
  'It turned out the {X} was retrying requests that had already succeeded.',
  'Small batches beat heroic releases, every time we measured.',
  'The documentation for {T} covers this, in a footnote.',
  'We kept the old {X} running in parallel for a week and compared the results.',
  'Nothing about this is specific to {T}; the same idea applies everywhere.',
  'If you remember one thing, make it this: keep the {X} boring.',
  'The benchmark numbers are in the repository, with the script that produced them.',
  'Our on-call rotation got noticeably quieter after this change.',
] as const;

export const HEADINGS = ['Background', 'The problem', 'What we tried', 'What worked', 'Numbers', 'Lessons', 'Next steps'] as const;

export const COMMENTS = [
  'Great write-up, thanks for sharing!',
  'We hit exactly this last month. The {X} was the culprit for us too.',
  'Did you measure the difference with {T}?',
  'Bookmarked. The part about the {X} is gold.',
  'I disagree slightly: a {a} {X} has its own costs.',
  'Could you share the benchmark script?',
  'This deserves more attention.',
  'How does this behave under load?',
  'Nice! We use a similar {X} with {T}.',
  'Small typo in the second paragraph, otherwise excellent.',
  'Would love a follow-up on the migration path.',
  'Thanks, this saved me an afternoon.',
] as const;
