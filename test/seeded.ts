// The real application on a fresh database filled by the seeder (scripts/seed.ts), for tests that
// need realistic volumes: query plans, logins as seeded users. The app is harness.ts's own; the
// data goes in through its pool before the first request.
import { seed, type SeedOptions, type SeedSummary } from '../scripts/seed.ts';
import { createTestApp, type TestApp } from './harness.ts';

export interface SeededApp extends TestApp {
  summary: SeedSummary;
}

export async function createSeededApp(options: Partial<SeedOptions>, env: Record<string, string> = {}): Promise<SeededApp> {
  const t = await createTestApp(env);
  try {
    return { ...t, summary: await seed(t.db, options) };
  } catch (err) {
    await t.close();
    throw err;
  }
}
