// A redis-server of a test's own, on a free port, with nothing persisted: for tests that kill
// and restart Redis (the machine's shared one at 6379 must stay up for everybody else).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../src/db/embedded.ts';

export class PrivateRedis {
  port = 0;
  #proc: ChildProcess | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (on the same port as before, after a kill) and waits until it accepts connections. */
  async start(): Promise<void> {
    this.port ||= await freePort();
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#proc = proc;
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const started = performance.now();
    while (!out.includes('Ready to accept connections') && proc.exitCode === null) {
      assert.ok(performance.now() - started < 10_000, 'timed out waiting for redis-server to accept connections');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(proc.exitCode, null, `redis-server exited: ${out}`);
  }

  /** SIGKILL, as a crash would; resolves once it has exited. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  }
}
