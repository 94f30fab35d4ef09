// Bounds on the connections one process holds, so one client holding connections cannot stop
// others from connecting, or the probes from answering (docs/connections.md):
//   - at most HTTP_MAX_CONNECTIONS open, below the file-descriptor limit: past it the process
//     could not accept at all (every new connection, /readyz's included, was reset);
//   - at most HTTP_MAX_CONNECTIONS_PER_ADDRESS from one peer address;
//   - when a new connection would pass either bound, the idle connection (keep-alive, between
//     requests, or accepted and silent) that has been idle longest is closed to make room, first
//     among that address's own; only when none is idle is the new connection refused, closed at
//     once before any request is read: the cheapest answer, for the connection that costs least;
//   - past 3/4 of the process's bound ("pressure"), connections going idle keep HTTP's
//     keep-alive for HTTP_KEEP_ALIVE_UNDER_PRESSURE_MS instead of HTTP_KEEP_ALIVE_TIMEOUT_MS,
//     and those idle longer than that are closed as new ones arrive.
// A connection is busy from a request's arrival to its response's end (the request pipeline
// tells: http/pipeline.ts), idle otherwise. Node's own server.maxConnections only refuses, and
// cannot tell an idle connection from a busy one; its closeIdleConnections() closes all of them.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionBounds {
  /** Open connections at most (0: no bound). */
  readonly maxConnections: number;
  /** Open connections from one peer address at most (0: no bound). */
  readonly maxPerAddress: number;
  /** Keep-alive timeout for connections going idle under pressure, in ms. */
  readonly keepAliveUnderPressureMs: number;
}

const kConn = Symbol('conduit.connection');

/** What is kept per connection: its peer, its requests in progress, since when it is idle. */
interface Conn {
  readonly peer: Peer;
  busy: number;
  idleSince: number;
  /** Counted out (closed here, or its 'close' came). */
  gone: boolean;
}

/** One peer address: its open connections, and its idle ones, idle longest first. */
interface Peer {
  readonly address: string;
  open: number;
  readonly idle: Set<Socket>;
}

declare module 'node:net' {
  interface Socket {
    [kConn]?: Conn;
  }
}

export class Connections {
  readonly #bounds: ConnectionBounds;
  readonly #peers = new Map<string, Peer>();
  /** Every idle connection, idle longest first (a Set keeps insertion order). */
  readonly #idle = new Set<Socket>();
  readonly #pressureAt: number;
  #server: Server | undefined;
  #keepAliveMs = 0;
  readonly stats = { open: 0, refusedProcess: 0, refusedAddress: 0, closedForRoom: 0, closedUnderPressure: 0 };

  constructor(bounds: ConnectionBounds) {
    this.#bounds = bounds;
    this.#pressureAt = bounds.maxConnections > 0 ? Math.ceil((bounds.maxConnections * 3) / 4) : Infinity;
  }

  /** Starts counting the server's connections (before it listens). */
  attach(server: Server): void {
    this.#server = server;
    this.#keepAliveMs = server.keepAliveTimeout;
    server.on('connection', (socket: Socket) => this.#accept(socket));
  }

  /** Whether the process is past 3/4 of its bound. */
  get underPressure(): boolean {
    return this.stats.open >= this.#pressureAt;
  }

  /** A request arrived on `socket` (the pipeline, for every request). */
  busy(socket: Socket): void {
    const conn = socket[kConn];
    if (conn === undefined) return;
    if (conn.busy++ === 0) {
      this.#idle.delete(socket);
      conn.peer.idle.delete(socket);
    }
  }

  /** A response on `socket` is done. */
  idle(socket: Socket): void {
    const conn = socket[kConn];
    if (conn === undefined || conn.busy === 0 || --conn.busy > 0 || conn.gone || socket.destroyed) return;
    this.#markIdle(socket, conn);
  }

  #accept(socket: Socket): void {
    const { maxConnections, maxPerAddress } = this.#bounds;
    const address = socket.remoteAddress ?? '';
    const known = this.#peers.get(address);
    if (maxPerAddress > 0 && known !== undefined && known.open >= maxPerAddress && !this.#closeOldest(known.idle)) {
      this.stats.refusedAddress++;
      return void socket.destroy();
    }
    if (maxConnections > 0) {
      if (this.stats.open >= this.#pressureAt) this.#reclaim();
      if (this.stats.open >= maxConnections && !this.#closeOldest(this.#idle)) {
        this.stats.refusedProcess++;
        return void socket.destroy();
      }
    }
    // Looked up again: closing the address's last idle connection may have removed it.
    let peer = this.#peers.get(address);
    if (peer === undefined) {
      peer = { address, open: 0, idle: new Set() };
      this.#peers.set(address, peer);
    }
    peer.open++;
    this.stats.open++;
    const conn: Conn = { peer, busy: 0, idleSince: 0, gone: false };
    socket[kConn] = conn;
    // Accepted and silent counts as idle: HTTP_HEADERS_TIMEOUT_MS bounds it anyway.
    this.#markIdle(socket, conn);
    socket.once('close', () => this.#release(socket, conn));
    this.#followPressure();
  }

  #markIdle(socket: Socket, conn: Conn): void {
    conn.idleSince = performance.now();
    this.#idle.add(socket);
    conn.peer.idle.add(socket);
  }

  /** Counts a connection out, once: when it is closed here, or when it closes. */
  #release(socket: Socket, conn: Conn): void {
    if (conn.gone) return;
    conn.gone = true;
    this.#idle.delete(socket);
    conn.peer.idle.delete(socket);
    this.stats.open--;
    if (--conn.peer.open === 0) this.#peers.delete(conn.peer.address);
    this.#followPressure();
  }

  /** Closes the connection of `idle` idle longest; false when there is none. */
  #closeOldest(idle: Set<Socket>): boolean {
    for (const socket of idle) {
      this.#drop(socket);
      this.stats.closedForRoom++;
      return true;
    }
    return false;
  }

  /** Under pressure: closes the connections idle longer than the shorter keep-alive. */
  #reclaim(): void {
    const before = performance.now() - this.#bounds.keepAliveUnderPressureMs;
    for (const socket of this.#idle) {
      if (socket[kConn]!.idleSince > before) return;
      this.#drop(socket);
      this.stats.closedUnderPressure++;
    }
  }

  /** Closes an idle connection now, counted out at once so the room it leaves is seen. */
  #drop(socket: Socket): void {
    this.#release(socket, socket[kConn]!);
    socket.destroy();
  }

  /** Node reads server.keepAliveTimeout as each response ends: shorter under pressure. */
  #followPressure(): void {
    const server = this.#server;
    if (server === undefined || this.#bounds.keepAliveUnderPressureMs >= this.#keepAliveMs) return;
    const wanted = this.underPressure ? this.#bounds.keepAliveUnderPressureMs : this.#keepAliveMs;
    if (server.keepAliveTimeout !== wanted) server.keepAliveTimeout = wanted;
  }
}
