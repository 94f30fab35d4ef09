// More than one listening socket on the service's port, so a burst of new connections is accepted
// while the process is busy serving the ones it has (docs/connections.md "Accepting a burst").
//
// Since libuv 1.45 (Node 20) a listening socket accepts one connection per turn of the event
// loop. On a busy process a turn serves every connection with a request waiting, tens of
// milliseconds at 1,000 connections, so with one socket a burst of new clients queued in the
// kernel is let in a few dozen a second: 1,000 clients connecting at once onto a process at its
// core's limit see a p99 of 3 s and requests past 5 s. With SO_REUSEPORT the kernel spreads new connections over
// several sockets bound to the port, each with its own accept queue, and each accepts one per
// turn: N sockets accept N per turn. Each socket's connections are handed to the one HTTP server
// (Node's documented way to give it a connection), so every bound, timeout and metric on that
// server sees them as it sees its own.
import type { Server } from 'node:http';
import net from 'node:net';

export interface ExtraListeners {
  /** Stops accepting on them, and resolves once the connections they accepted are all closed. */
  close(): Promise<void>;
}

export interface ListenOptions {
  readonly host: string;
  /** The port the server already listens on, with reusePort. */
  readonly port: number;
  readonly backlog: number;
  /** How many sockets besides the server's own. */
  readonly count: number;
}

/** Listens `count` more sockets on `server`'s port (itself listening with reusePort: true). */
export async function listenMore(server: Server, opts: ListenOptions): Promise<ExtraListeners> {
  const listeners: net.Server[] = [];
  const hand = (socket: net.Socket) => server.emit('connection', socket);
  try {
    for (let i = 0; i < opts.count; i++) {
      // The options node:http gives its own listening socket: it ends the writable side itself
      // (allowHalfOpen) and writes responses at once (noDelay).
      const listener = net.createServer({ allowHalfOpen: true, noDelay: true }, hand);
      listeners.push(listener);
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host: opts.host, port: opts.port, backlog: opts.backlog, reusePort: true }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
    }
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }
  return {
    close: () => Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())))).then(() => undefined),
  };
}
