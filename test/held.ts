// Many raw connections from one source address, for the tests of the connection bounds
// (src/http/connections.ts): each connects, sends one request and stays open.
import net from 'node:net';

export interface Held {
  /** Connections whose request was answered. */
  readonly answered: number;
  /** Connections closed by the server before any answer. */
  readonly refused: number;
  /** The longest time from connecting to the first byte of an answer, in ms. */
  readonly slowestMs: number;
  /** Connections still open now. */
  open(): number;
  close(): void;
}

export interface HoldOptions {
  /** The source address (127.0.0.2, 127.0.0.3... are all this machine's). */
  readonly from?: string;
  /** 'get': a whole GET /healthz, answered at once; 'stalled': a POST whose body never comes. */
  readonly send?: 'get' | 'stalled';
  /** Give up on an answer after this long (the connection is then counted in neither). */
  readonly waitMs?: number;
}

const GET = 'GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n';
const STALLED = 'POST /api/users/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{';

/** Opens `n` connections at once to 127.0.0.1:`port`; resolves when each is answered or closed. */
export async function hold(port: number, n: number, opts: HoldOptions = {}): Promise<Held> {
  const sockets: net.Socket[] = [];
  let answered = 0;
  let refused = 0;
  let slowestMs = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    let pending = n;
    const settle = () => {
      if (--pending === 0) resolve();
    };
    const giveUp = setTimeout(resolve, opts.waitMs ?? 10_000);
    giveUp.unref();
    for (let i = 0; i < n; i++) {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.from });
      sockets.push(socket);
      let settled = false;
      socket.on('connect', () => {
        socket.write(opts.send === 'stalled' ? STALLED : GET);
        // A stalled request is never answered: it counts as held once sent.
        if (opts.send === 'stalled' && !settled) {
          settled = true;
          answered++;
          settle();
        }
      });
      socket.on('data', () => {
        if (settled) return;
        settled = true;
        answered++;
        slowestMs = Math.max(slowestMs, performance.now() - started);
        settle();
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        if (settled) return;
        settled = true;
        refused++;
        settle();
      });
    }
  });
  return {
    answered,
    refused,
    slowestMs,
    open: () => sockets.filter((s) => !s.destroyed && !s.readableEnded).length,
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/** A sample's value from a Prometheus exposition (0 when absent). */
export function sample(exposition: string, name: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}
