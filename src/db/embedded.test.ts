// The embedded server must not change how the process that started it ends: the package's own
// exit hooks once turned failing runs into exit 0 and then green runs into exit 1.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'conduit-embedded-'));
// As root the server runs as the `postgres` user, which must reach the directory.
await chmod(tmp, 0o755);
after(() => rm(tmp, { recursive: true, force: true }));

const embeddedModule = new URL('./embedded.ts', import.meta.url).href;

/** Runs `body` in a fresh Node process after starting a server as `pg`; resolves its exit code and output. */
function runChild(dir: string, body: string): Promise<{ code: number | null; out: string }> {
  const script = `
    import { freePort, startEmbeddedPostgres } from ${JSON.stringify(embeddedModule)};
    const pg = await startEmbeddedPostgres({ dir: ${JSON.stringify(dir)}, port: await freePort(), ephemeral: true });
    console.log('PORT=' + pg.port);
    ${body}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

test('a process that stopped its server ends with its own exit code, 0 or not', async () => {
  const ok = await runChild(path.join(tmp, 'a'), 'await pg.stop();');
  assert.equal(ok.code, 0, ok.out);
  assert.doesNotMatch(ok.out, /TypeError|done is not a function/);
  const failed = await runChild(path.join(tmp, 'b'), 'await pg.stop(); process.exitCode = 3;');
  assert.equal(failed.code, 3, failed.out);
});

test('a process that exits without stopping its server still stops PostgreSQL', async () => {
  const r = await runChild(path.join(tmp, 'c'), 'process.exit(5);');
  assert.equal(r.code, 5, r.out);
  const port = Number(/PORT=(\d+)/.exec(r.out)?.[1]);
  assert.ok(port > 0, r.out);
  // SIGINT is PostgreSQL's fast shutdown: give it a moment to close its listener.
  let open = true;
  for (let i = 0; i < 50 && open; i++) {
    open = await portOpen(port);
    if (open) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(open, false, `PostgreSQL still listening on ${port}`);
});
