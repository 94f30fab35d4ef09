// `npm run build` (and `npm start` before it starts): the service compiled to JavaScript in
// dist/, as tsconfig.build.json says and why, with the migrations beside it
// (src/db/migrate.ts reads them from its own folder). Plain JavaScript, like preflight.mjs: it
// runs before anything is built.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.join(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
// From empty: a module whose source was deleted must not linger where an import could find it.
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const res = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (res.status !== 0) process.exit(res.status ?? 1);
cpSync(path.join(root, 'src', 'db', 'migrations'), path.join(dist, 'src', 'db', 'migrations'), { recursive: true });
