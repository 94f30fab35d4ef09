// `npm run build` (and `npm start` before it starts): the service compiled to JavaScript in
// dist/, as tsconfig.build.json says and why, with the migrations beside it
// (src/db/migrate.ts reads them from its own folder). Plain JavaScript, like preflight.mjs: it
// runs before anything is built.
//
// Built into a folder of its own, then put in place: a process starting from dist/ meanwhile (a
// worker the cluster supervisor forks again, another `npm start`) finds the old build or the
// new one, never half of one, and a failed build leaves the old one. From empty: a module whose
// source was deleted must not linger where an import could find it.
import { spawnSync } from 'node:child_process';
import { cpSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.join(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const next = path.join(root, `.dist-${process.pid}`);
const old = path.join(root, `.dist-old-${process.pid}`);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
let status = 1;
try {
  const res = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', next], {
    cwd: root,
    stdio: 'inherit',
  });
  status = res.status ?? 1;
  if (status === 0) {
    cpSync(path.join(root, 'src', 'db', 'migrations'), path.join(next, 'src', 'db', 'migrations'), { recursive: true });
    // Two renames: dist/ is missing only between them, never partly written.
    try {
      renameSync(dist, old);
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ENOENT') throw err;
    }
    renameSync(next, dist);
  }
} finally {
  rmSync(next, { recursive: true, force: true });
  rmSync(old, { recursive: true, force: true });
}
process.exitCode = status;
