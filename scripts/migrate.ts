// `npm run migrate` (in the image: `node scripts/migrate.ts`): apply the pending migrations and
// exit, serving nothing. The Kubernetes migration Job and the compose stack's one-shot `migrate`
// service run it before the instances start, so a long migration never holds an instance's
// startup past its probes. The instances still migrate at start under the same advisory lock
// (src/db/migrate.ts), so skipping this step is safe too: they then find nothing left to apply.
//
// It reads the same validated configuration as the service (a bad or missing DATABASE_URL or
// JWT_SECRET stops it the same way). Without DATABASE_URL it migrates the embedded PostgreSQL in
// DATA_DIR, as `npm start` would, and stops it again.
import { pino } from 'pino';
import { loadConfigOrExit } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { fillUsernameSkeletons } from '../src/users/users.repository.ts';

const config = loadConfigOrExit();
const log = pino({ level: config.logLevel, base: { pid: process.pid, task: 'migrate' } });
const source = await openDatabase(config, (msg) => log.info(msg));
// One connection: migrations run on a single session that holds the advisory lock. The pool's
// acquire timeout bounds the connect; waiting for the lock itself is not bounded (another
// migrator is working).
const pool = createPool(source.url, { dbPoolMax: 1, dbAcquireTimeoutMs: Math.max(config.dbAcquireTimeoutMs, 10_000) });
let failed = false;
try {
  const started = performance.now();
  const { applied, latest } = await migrate(pool);
  log.info({ applied, latest, ms: Math.round(performance.now() - started) }, applied.length ? 'migrations applied' : 'schema up to date');
  const skeletons = await fillUsernameSkeletons(pool);
  if (skeletons.filled + skeletons.lookAlikes > 0) log.info(skeletons, 'username skeletons filled');
} catch (err) {
  failed = true;
  log.error({ err }, 'migration failed');
} finally {
  await pool.end();
  await source.embedded?.stop();
}
process.exitCode = failed ? 1 : 0;
