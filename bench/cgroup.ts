// A memory limit for a process the harness starts, as a container's: a child of this process's
// own memory cgroup (v1 or v2) with the limit set, which the process enters before Node starts
// (so V8 and process.constrainedMemory() see it, as in a pod). Needs write access to the cgroup
// tree (root, or a delegated cgroup); without it `create` answers why not.
import { existsSync, readFileSync, rmdirSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export interface MemoryCgroup {
  dir: string;
  limitBytes: number;
  /** Processes killed by the kernel's OOM killer in this cgroup so far. */
  oomKills(): number;
  /** The cgroup's peak memory use (bytes), as the kernel counts it against the limit. */
  peakBytes(): number | undefined;
  /** `sh -c` wrapper: enters the cgroup, then execs the command (same pid). */
  wrap: (command: string, args: readonly string[]) => { command: string; args: string[] };
  remove(): void;
}

/** Kubernetes quantities as the manifests write them: `256Mi`, `1Gi`, `512M`, bytes. */
export function parseQuantity(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q.trim());
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

function ownCgroup(): { version: 1 | 2; dir: string } | string {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  } catch {
    return 'no /proc/self/cgroup (not Linux)';
  }
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'));
  if (v1 && existsSync('/sys/fs/cgroup/memory')) return { version: 1, dir: path.join('/sys/fs/cgroup/memory', v1[2]!) };
  const v2 = lines.map((l) => l.split(':')).find((f) => f[0] === '0' && f[1] === '');
  if (v2 && existsSync('/sys/fs/cgroup/cgroup.controllers')) return { version: 2, dir: path.join('/sys/fs/cgroup', v2[2]!) };
  return 'no memory cgroup controller mounted';
}

export function createMemoryCgroup(name: string, limitBytes: number): MemoryCgroup | string {
  const own = ownCgroup();
  if (typeof own === 'string') return own;
  const dir = path.join(own.dir, `${name}-${process.pid}`);
  const read = (file: string) => {
    try {
      return readFileSync(path.join(dir, file), 'utf8');
    } catch {
      return '';
    }
  };
  try {
    mkdirSync(dir);
    if (own.version === 1) {
      writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
      // No swap beyond the limit either, where the kernel accounts it.
      if (existsSync(path.join(dir, 'memory.memsw.limit_in_bytes')))
        writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
    } else {
      writeFileSync(path.join(dir, 'memory.max'), String(limitBytes));
      if (existsSync(path.join(dir, 'memory.swap.max'))) writeFileSync(path.join(dir, 'memory.swap.max'), '0');
    }
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      // never made
    }
    return `cannot create a memory cgroup under ${own.dir}: ${(err as Error).message}`;
  }
  return {
    dir,
    limitBytes,
    oomKills: () => {
      const text = own.version === 1 ? read('memory.oom_control') : read('memory.events');
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    },
    peakBytes: () => {
      const text = own.version === 1 ? read('memory.max_usage_in_bytes') : read('memory.peak');
      return text.trim() ? Number(text.trim()) : undefined;
    },
    wrap: (command, args) => ({
      command: '/bin/sh',
      args: ['-c', `echo $$ > '${path.join(dir, 'cgroup.procs')}' && exec "$0" "$@"`, command, ...args],
    }),
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        // still has a process (it is being killed): the kernel keeps it until then
      }
    },
  };
}
