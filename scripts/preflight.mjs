// Runs before anything else loads. First it refuses an older Node: `npm run dev`, the tests and the
// other scripts run TypeScript directly (Node's type stripping, 24.7+ here), which an older Node answers with
// ERR_UNKNOWN_FILE_EXTENSION ".ts" or a syntax error that says nothing about the version.
// Loaded first with `node --import ./scripts/preflight.mjs ...` (package.json scripts), or
// run as `node scripts/preflight.mjs`. Plain JavaScript that any Node with ES modules parses:
// no TypeScript, no newer syntax.
import { existsSync, readFileSync } from 'node:fs';

/**
 * The minimum of an engines range such as ">=24.7.0 <25", as [major, minor, patch].
 * @param {string | undefined} range
 * @returns {[number, number, number] | undefined}
 */
export function minimumOf(range) {
  const m = /(?:^|\s)>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(String(range));
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)];
}

/**
 * undefined when `version` (process.versions.node, "24.7.0") satisfies the engines range's
 * minimum, else the one line to print. The upper bound is npm's warning, not a refusal: a newer
 * Node runs the code.
 * @param {string} version
 * @param {string | undefined} range
 * @returns {string | undefined}
 */
export function checkNode(version, range) {
  const min = minimumOf(range);
  if (!min) return undefined;
  const have = String(version)
    .split('.')
    .map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((have[i] || 0) > min[i]) return undefined;
    if ((have[i] || 0) < min[i]) {
      const shown = min[2] === 0 ? `${min[0]}.${min[1]}` : min.join('.');
      return `conduit needs Node >= ${shown} (this is v${version})`;
    }
  }
  return undefined;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const problem = checkNode(process.versions.node, pkg.engines && pkg.engines.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}

// Then `.env` in the working directory, when there is one, as `--env-file-if-exists=.env` would
// load it (a variable already set wins). Here rather than as that flag: an older Node stops at a
// flag it does not know, before this module could say which version is needed.
if (existsSync('.env')) process.loadEnvFile('.env');
