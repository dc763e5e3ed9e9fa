import { TetherError } from './errors.js';
import type { EndInfo } from './transport.js';

/** The subset of the WHATWG WebSocket that the SDK uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/** A WebSocket constructor: the global one, or e.g. the `ws` package's in older Node. */
export type WebSocketCtor = new (url: string, protocols?: string[]) => WebSocketLike;

/**
 * tokenProtocols are the WebSocket subprotocols that carry a token without
 * putting it in the URL (where access logs and history keep it): the server
 * reads `tether.token.<token>` and selects `tether` (docs/protocol.md).
 */
export function tokenProtocols(token: string): string[] {
  return ['tether', 'tether.token.' + token];
}

/** A frame of docs/protocol.md, as parsed JSON. */
export type Frame = { type: string; id?: string; [k: string]: unknown };

export interface FrameSocketOptions {
  heartbeatTimeout: number;
  connectTimeout: number;
  /** Subprotocols to offer (tokenProtocols); none when absent. */
  protocols?: string[];
}

export interface FrameSocketHandlers {
  opened(): void;
  /** Frames that are not replies, pings, pongs, connection errors or shutdown. */
  frame(f: Frame, size: number): void;
  end(info: EndInfo): void;
}

interface Pending {
  resolve(f: Frame): void;
  reject(e: unknown): void;
}

/**
 * FrameSocket runs the framed protocol over one WebSocket: request ids and
 * their answers, answering the server's pings, the heartbeat watchdog (a
 * server that sent nothing for heartbeatTimeout is dead: the server pings
 * every 5 s by default), the shutdown frame, and the single end report.
 */
export class FrameSocket {
  private ws: WebSocketLike | null = null;
  private seq = 0;
  private pending = new Map<string, Pending>();
  private lastRx = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private isOpen = false;
  private done = false;
  private serverError: { code: string; message: string } | null = null;
  private shutdownHint: number | undefined;

  constructor(
    private readonly url: string,
    private readonly ctor: WebSocketCtor,
    private readonly opts: FrameSocketOptions,
    private readonly h: FrameSocketHandlers,
  ) {}

  start(): void {
    let ws: WebSocketLike;
    try {
      ws = this.opts.protocols ? new this.ctor(this.url, this.opts.protocols) : new this.ctor(this.url);
    } catch (err) {
      queueMicrotask(() => this.finish({ reason: 'transport-error', message: String(err), opened: false }));
      return;
    }
    this.ws = ws;
    this.lastRx = Date.now();
    this.arm(this.opts.connectTimeout, () => this.finish({ reason: 'connect-timeout', message: `no WebSocket open within ${this.opts.connectTimeout} ms`, opened: false }));
    ws.onopen = () => {
      this.isOpen = true;
      this.lastRx = Date.now();
      this.watch();
      this.h.opened();
    };
    ws.onmessage = (ev) => this.onData(ev.data);
    // Browsers follow an error with a close event; Node 20's WebSocket (undici)
    // fires only the error when the handshake is refused. So an error before
    // open ends the attempt at once, and one after open ends the connection if
    // no close follows within a second.
    ws.onerror = () => {
      if (!this.isOpen) this.finish({ reason: 'transport-error', message: 'WebSocket could not connect', opened: false });
      else setTimeout(() => this.finish({ reason: 'transport-error', message: 'WebSocket error', opened: true }), 1000);
    };
    ws.onclose = (ev) => {
      if (this.shutdownHint !== undefined) {
        this.finish({ reason: 'shutdown', message: 'the server is stopping', reconnectAfterMs: this.shutdownHint, closeCode: ev.code, opened: this.isOpen });
      } else if (this.serverError) {
        this.finish({ reason: 'server-error', code: this.serverError.code, message: this.serverError.message, closeCode: ev.code, opened: this.isOpen });
      } else {
        this.finish({
          reason: this.isOpen ? 'transport-closed' : 'transport-error',
          message: this.isOpen ? `WebSocket closed (${ev.code ?? '?'}${ev.reason ? ' ' + ev.reason : ''})` : 'WebSocket could not connect',
          closeCode: ev.code,
          opened: this.isOpen,
        });
      }
    };
  }

  get opened(): boolean {
    return this.isOpen && !this.done;
  }

  /** send writes one frame; it returns false when the socket is not open. */
  send(f: Frame): boolean {
    if (!this.opened || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(f));
      return true;
    } catch {
      return false;
    }
  }

  /** request sends a frame with a fresh id and resolves with its reply (rejects with its error). */
  request(f: Omit<Frame, 'id'>): Promise<Frame> {
    const id = 'c' + ++this.seq;
    return new Promise<Frame>((resolve, reject) => {
      if (!this.send({ ...f, id } as Frame)) {
        reject(new TetherError('disconnected', 'not connected'));
        return;
      }
      this.pending.set(id, { resolve, reject });
    });
  }

  /** abort ends the connection as failed, reporting through end (transport-error). */
  abort(message: string): void {
    this.finish({ reason: 'transport-error', message, opened: this.isOpen });
  }

  /** close ends the socket without reporting through end. */
  close(code = 1000): void {
    if (this.done) return;
    this.done = true;
    this.teardown(code, new TetherError('closed', 'connection closed by the client'));
  }

  private onData(raw: unknown): void {
    this.lastRx = Date.now();
    if (typeof raw !== 'string') return; // the server sends text only
    let f: Frame;
    try {
      f = JSON.parse(raw);
    } catch {
      return;
    }
    switch (f.type) {
      case 'ping':
        this.send({ type: 'pong', id: f.id });
        return;
      case 'shutdown':
        this.shutdownHint = typeof f.reconnect_after_ms === 'number' ? f.reconnect_after_ms : 0;
        this.send({ type: 'bye' });
        // The server closes after bye; if it does not within a second, we do.
        this.arm(1000, () => this.finish({ reason: 'shutdown', message: 'the server is stopping', reconnectAfterMs: this.shutdownHint, opened: true }));
        return;
      case 'pong':
      case 'reply':
      case 'error': {
        if (f.id !== undefined) {
          const p = this.pending.get(f.id);
          if (!p) return;
          this.pending.delete(f.id);
          if (f.type === 'error') p.reject(new TetherError(String(f.code), String(f.message ?? f.code), { details: f }));
          else p.resolve(f);
          return;
        }
        if (f.type === 'error' && f.channel === undefined) {
          // The connection is ending; the close that follows reports it.
          this.serverError = { code: String(f.code), message: String(f.message ?? f.code) };
          return;
        }
        break;
      }
    }
    this.h.frame(f, raw.length);
  }

  private arm(ms: number, fn: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
  }

  /** watch checks the heartbeat bound, rescheduling itself at the next deadline. */
  private watch(): void {
    const left = this.lastRx + this.opts.heartbeatTimeout - Date.now();
    if (left <= 0) {
      this.finish({ reason: 'heartbeat-timeout', message: `the server sent nothing for ${this.opts.heartbeatTimeout} ms`, opened: true });
      return;
    }
    this.arm(left, () => this.watch());
  }

  private finish(info: EndInfo): void {
    if (this.done) return;
    this.done = true;
    this.teardown(info.reason === 'heartbeat-timeout' ? 4000 : 1000, new TetherError('disconnected', `connection ended: ${info.message}`));
    this.h.end(info);
  }

  private teardown(code: number, err: TetherError): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
      try {
        ws.close(code);
      } catch {
        try {
          ws.close();
        } catch {
          /* already closed */
        }
      }
    }
    const p = this.pending;
    this.pending = new Map();
    for (const x of p.values()) x.reject(err);
  }
}

/** globalWebSocket returns the runtime's WebSocket constructor, if any. */
export function globalWebSocket(): WebSocketCtor | undefined {
  return (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
}
