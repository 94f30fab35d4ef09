// What password hashing holds in memory: this process hashes with the service's own function
// (src/users/password.ts: node:crypto's Argon2id, m=7 MiB) from a number of callers at once, for
// a while, and prints its peak RSS, what RSS is left once the hashing stops, hashes per second,
// CPU and minor page faults per hash. Run it under the settings to compare, each in its own
// process: libuv's threads (UV_THREADPOOL_SIZE, read when the pool starts), glibc's malloc
// (MALLOC_ARENA_MAX, GLIBC_TUNABLES). docs/memory.md "Password hashing" has the results.
//
//   UV_THREADPOOL_SIZE=4 node scripts/argon2-memory.ts [--at-once 4] [--seconds 8]
import { parseArgs } from 'node:util';
import { hashPassword } from '../src/users/password.ts';

const { values } = parseArgs({
  options: { 'at-once': { type: 'string', default: '4' }, seconds: { type: 'string', default: '8' } },
});
const atOnce = Number(values['at-once']);
const seconds = Number(values.seconds);
if (!Number.isInteger(atOnce) || atOnce < 1 || !(seconds > 0)) {
  console.error('usage: node scripts/argon2-memory.ts [--at-once N (1 or more)] [--seconds S (more than 0)]');
  process.exit(2);
}

const rssMB = () => process.memoryUsage.rss() / 1e6;
const start = rssMB();
const before = process.resourceUsage();
let peak = start;
const sampler = setInterval(() => (peak = Math.max(peak, rssMB())), 50);
let hashes = 0;
const until = Date.now() + seconds * 1000;
await Promise.all(
  Array.from({ length: atOnce }, async () => {
    while (Date.now() < until) {
      await hashPassword('correct horse battery');
      hashes++;
    }
  }),
);
clearInterval(sampler);
const after = process.resourceUsage();
// Microseconds of CPU, the threadpool's threads included (getrusage of the process).
const cpuUs = after.userCPUTime + after.systemCPUTime - before.userCPUTime - before.systemCPUTime;
console.log(
  JSON.stringify({
    threads: process.env.UV_THREADPOOL_SIZE ?? '4 (libuv)',
    atOnce,
    malloc: [process.env.MALLOC_ARENA_MAX && `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}`, process.env.GLIBC_TUNABLES]
      .filter(Boolean)
      .join(' '),
    startMB: Math.round(start),
    peakMB: Math.round(peak),
    afterMB: Math.round(rssMB()),
    hashesPerSec: Number((hashes / seconds).toFixed(1)),
    cpuMsPerHash: Number((cpuUs / 1000 / hashes).toFixed(1)),
    faultsPerHash: Math.round((after.minorPageFault - before.minorPageFault) / hashes),
  }),
);
