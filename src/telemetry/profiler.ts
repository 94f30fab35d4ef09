// Profiles of the running process, on demand, without a restart or --inspect: V8's CPU profiler
// and sampling heap profiler through node:inspector's in-process session, and heap snapshots.
//   - SIGUSR2: a CPU profile and an allocation profile of the next PROFILE_SECONDS, written to
//     PROFILE_DIR in V8's formats (.cpuprofile, .heapprofile: Chrome DevTools, speedscope) and
//     pprof's (.pb.gz: go tool pprof, Pyroscope) (`kill -USR2 <pid>`; the supervisor passes it on
//     to every worker).
//   - the admin endpoints (admin.ts), behind ADMIN_TOKEN, return them over HTTP.
// The CPU profiler costs a few percent while it runs and nothing otherwise; a heap snapshot
// stops the process for about a second per 100 MB of heap, so it is never taken on a signal.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { cpuProfileToPprof, heapProfileToPprof, type CpuProfile, type HeapProfile } from './pprof.ts';

/** V8's default CPU sampling interval: 1 ms. */
export const CPU_INTERVAL_US = 1000;
/** Bytes between allocation samples: V8's default (32 KiB), a fraction of a percent of cost. */
export const HEAP_INTERVAL_BYTES = 32 * 1024;

let cpuBusy = false;
let heapBusy = false;

export class ProfilerBusyError extends Error {
  constructor(what: string) {
    super(`a ${what} is already being taken`);
    this.name = 'ProfilerBusyError';
  }
}

async function withSession<T>(work: (s: Session) => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  try {
    return await work(session);
  } finally {
    session.disconnect();
  }
}

/** A CPU profile of the next `seconds`. */
export async function cpuProfile(seconds: number, intervalUs = CPU_INTERVAL_US): Promise<CpuProfile> {
  if (cpuBusy) throw new ProfilerBusyError('CPU profile');
  cpuBusy = true;
  try {
    return await withSession(async (s) => {
      await s.post('Profiler.enable');
      await s.post('Profiler.setSamplingInterval', { interval: intervalUs });
      await s.post('Profiler.start');
      await sleep(seconds * 1000);
      const { profile } = await s.post('Profiler.stop');
      await s.post('Profiler.disable');
      return profile;
    });
  } finally {
    cpuBusy = false;
  }
}

/**
 * Where the bytes allocated during the next `seconds` were allocated (sampled). With `promoted`,
 * only what no scavenge freed: what was promoted to the old generation (live or collected there
 * since), which is what grows it between full collections, and young garbage that a full
 * collection swept first.
 */
export async function heapProfile(seconds: number, opts: { promoted?: boolean } = {}): Promise<HeapProfile> {
  if (heapBusy) throw new ProfilerBusyError('heap profile');
  heapBusy = true;
  try {
    return await withSession(async (s) => {
      await s.post('HeapProfiler.enable');
      // Kept after collection too: the profile shows all allocation, not only what survived
      // (or, promoted, all that a scavenge did not free).
      await s.post('HeapProfiler.startSampling', {
        samplingInterval: HEAP_INTERVAL_BYTES,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: opts.promoted !== true,
      });
      await sleep(seconds * 1000);
      const { profile } = await s.post('HeapProfiler.stopSampling');
      await s.post('HeapProfiler.disable');
      return profile;
    });
  } finally {
    heapBusy = false;
  }
}

/** Writes a heap snapshot (every live object) to `file`. Stops the process while it runs. */
export async function heapSnapshot(file: string): Promise<void> {
  if (heapBusy) throw new ProfilerBusyError('heap profile');
  heapBusy = true;
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    await withSession(async (s) => {
      s.on('HeapProfiler.addHeapSnapshotChunk', (m) => writeSync(fd, m.params.chunk));
      await s.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    });
  } finally {
    closeSync(fd);
    heapBusy = false;
  }
  await rename(tmp, file);
}

export function profileBaseName(now = new Date()): string {
  return `conduit-${process.pid}-${now.toISOString().replace(/[:.]/g, '-')}`;
}

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  await writeFile(`${file}.tmp`, data, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** CPU and allocation profiles of the next `seconds`, in V8's formats and pprof's, into `dir`. */
export async function writeProfiles(dir: string, seconds: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const base = path.join(dir, profileBaseName());
  const started = new Date();
  const [cpu, heap] = await Promise.all([cpuProfile(seconds), heapProfile(seconds)]);
  const files: [string, string | Buffer][] = [
    [`${base}.cpuprofile`, JSON.stringify(cpu)],
    [`${base}.cpu.pb.gz`, cpuProfileToPprof(cpu, CPU_INTERVAL_US)],
    [`${base}.heapprofile`, JSON.stringify(heap)],
    [`${base}.heap.pb.gz`, heapProfileToPprof(heap, HEAP_INTERVAL_BYTES, started)],
  ];
  for (const [file, data] of files) await writeAtomic(file, data);
  return files.map(([file]) => file);
}

/** SIGUSR2 takes profiles into `dir`; returns the function that removes the handler. */
export function installProfileSignal(opts: { dir: string; seconds: number; log: FastifyBaseLogger }): () => void {
  const onSignal = () => {
    opts.log.info({ seconds: opts.seconds, dir: opts.dir }, 'SIGUSR2: taking CPU and allocation profiles');
    writeProfiles(opts.dir, opts.seconds).then(
      (files) => opts.log.info({ files }, 'profiles written'),
      (err: unknown) => opts.log.warn({ err }, 'profiles could not be taken'),
    );
  };
  process.on('SIGUSR2', onSignal);
  return () => process.removeListener('SIGUSR2', onSignal);
}
