// Bounds on the connections one process holds, so one client holding connections cannot stop
// others from connecting, or the probes from answering (docs/connections.md):
//   - at most HTTP_MAX_CONNECTIONS open, below the file-descriptor limit: past it the process
//     could not accept at all (every new connection, /readyz's included, was reset);
//   - at most HTTP_MAX_CONNECTIONS_PER_ADDRESS from one peer address;
//   - when a new connection would pass either bound, an idle connection (keep-alive, between
//     requests, or accepted and silent) is closed to make room: the one opened earliest, first
//     among that address's own, since a connection held open for long is what a client hoarding
//     them has most of. Only when none is idle is the new connection refused, closed at once
//     before any request is read: the cheapest answer, for the connection that costs least;
//   - past 3/4 of the process's bound ("pressure"), connections going idle keep HTTP's
//     keep-alive for HTTP_KEEP_ALIVE_UNDER_PRESSURE_MS instead of HTTP_KEEP_ALIVE_TIMEOUT_MS,
//     and those idle longer than that are closed as new ones arrive.
// A connection is busy from a request's arrival to its response's end (the request pipeline
// tells: http/pipeline.ts), idle otherwise. Per request that is a count on the connection and
// no more: the idle ones are looked for only when room is needed. (Keeping them in order in a
// Set per request cost 2-3 µs of CPU per response at 1,000 connections: docs/connections.md.)
// Node's own server.maxConnections only refuses, and cannot tell an idle connection from a
// busy one; its closeIdleConnections() closes all of them.
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

/** One peer address: its open connections, oldest first. */
interface Peer {
  readonly address: string;
  readonly sockets: Set<Socket>;
}

declare module 'node:net' {
  interface Socket {
    [kConn]?: Conn;
  }
}

/** How often, at most, the connections idle too long are looked for under pressure. */
const RECLAIM_EVERY_MS = 250;

export class Connections {
  readonly #bounds: ConnectionBounds;
  readonly #peers = new Map<string, Peer>();
  /** Every open connection, oldest first (a Set keeps insertion order). */
  readonly #all = new Set<Socket>();
  readonly #pressureAt: number;
  #server: Server | undefined;
  #keepAliveMs = 0;
  #reclaimedAt = 0;
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
    if (conn !== undefined) conn.busy++;
  }

  /** A response on `socket` is done. */
  idle(socket: Socket): void {
    const conn = socket[kConn];
    if (conn !== undefined && conn.busy > 0 && --conn.busy === 0) conn.idleSince = performance.now();
  }

  #accept(socket: Socket): void {
    const { maxConnections, maxPerAddress } = this.#bounds;
    const address = socket.remoteAddress ?? '';
    const known = this.#peers.get(address);
    if (maxPerAddress > 0 && known !== undefined && known.sockets.size >= maxPerAddress && !this.#closeAnIdle(known.sockets)) {
      this.stats.refusedAddress++;
      return void socket.destroy();
    }
    if (maxConnections > 0) {
      if (this.stats.open >= this.#pressureAt) this.#reclaim();
      if (this.stats.open >= maxConnections && !this.#closeAnIdle(this.#all)) {
        this.stats.refusedProcess++;
        return void socket.destroy();
      }
    }
    // Looked up again: closing the address's last idle connection may have removed it.
    let peer = this.#peers.get(address);
    if (peer === undefined) {
      peer = { address, sockets: new Set() };
      this.#peers.set(address, peer);
    }
    peer.sockets.add(socket);
    this.#all.add(socket);
    this.stats.open++;
    // Accepted and silent counts as idle: HTTP_HEADERS_TIMEOUT_MS bounds it anyway.
    const conn: Conn = { peer, busy: 0, idleSince: performance.now(), gone: false };
    socket[kConn] = conn;
    socket.once('close', () => this.#release(socket, conn));
    this.#followPressure();
  }

  /** Counts a connection out, once: when it is closed here, or when it closes. */
  #release(socket: Socket, conn: Conn): void {
    if (conn.gone) return;
    conn.gone = true;
    this.#all.delete(socket);
    conn.peer.sockets.delete(socket);
    this.stats.open--;
    if (conn.peer.sockets.size === 0) this.#peers.delete(conn.peer.address);
    this.#followPressure();
  }

  /** Closes the earliest-opened idle connection of `sockets`; false when none is idle. */
  #closeAnIdle(sockets: Set<Socket>): boolean {
    for (const socket of sockets) {
      if (socket[kConn]!.busy > 0) continue;
      this.#drop(socket);
      this.stats.closedForRoom++;
      return true;
    }
    return false;
  }

  /** Under pressure: closes the connections idle longer than the shorter keep-alive. */
  #reclaim(): void {
    const now = performance.now();
    if (now - this.#reclaimedAt < RECLAIM_EVERY_MS) return;
    this.#reclaimedAt = now;
    const before = now - this.#bounds.keepAliveUnderPressureMs;
    for (const socket of this.#all) {
      const conn = socket[kConn]!;
      if (conn.busy > 0 || conn.idleSince > before) continue;
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
