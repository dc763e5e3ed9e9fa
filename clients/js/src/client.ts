import { Emitter } from './emitter.js';
import { abortError, isPermanent, TetherError } from './errors.js';
import { globalWebSocket, type WebSocketCtor } from './frames.js';
import { HTTPTransport, httpJSON, type HTTPContext } from './http.js';
import { Jobs } from './jobs.js';
import { defaultPendingLimits, PendingBuffer, type DroppedReport, type PendingLimits } from './pending.js';
import { Subscription, type GapInfo } from './subscription.js';
import type { EndInfo, EndReason, PublishAck, Transport, TransportName, TransportSink } from './transport.js';
import { addQuery, backoffDelay, httpBase, randomId, refreshDelay, tokenExpiry, waitFor, wsURL, type TokenSource } from './util.js';
import { WSTransport } from './ws.js';

/** ClientOptions: every field is optional except `url` outside browsers. Defaults are in {@link defaults}. */
export interface ClientOptions {
  /** The server's HTTP base URL, e.g. `http://127.0.0.1:8080`. Default: the page's origin in browsers. */
  url?: string;
  /** Transports to try, in order. Default `['websocket', 'sse', 'longpoll']`. */
  transports?: TransportName[];
  /** Connect at once. Default true. */
  autoConnect?: boolean;
  /** Called before each connection and HTTP request; the token goes as `?token=` on the WebSocket URL and `Authorization: Bearer` on fetch (SSE and long-poll included). */
  getToken?: TokenSource;
  /** A session key (docs/protocol.md "Session keys"), sent as `?session=` on WebSocket. Default none. */
  session?: string;
  /** A server that sent nothing for this long is dead (WebSocket; the server pings every 5 s). Default 10 000 ms. */
  heartbeatTimeout?: number;
  /** An SSE stream silent for this long is dead (the server's comment heartbeat is 15 s by default). Default 35 000 ms. */
  sseHeartbeatTimeout?: number;
  /** Bound on opening a connection or stream. Default 10 000 ms. */
  connectTimeout?: number;
  /** Bound on one HTTP request (publish, jobs). Default 15 000 ms. */
  requestTimeout?: number;
  /** Long-poll wait asked of the server. Default 25 000 ms. */
  pollWait?: number;
  /** Reconnect backoff: full jitter in [0, min(maxReconnectDelay, minReconnectDelay * 2^n)). Defaults 500 and 20 000 ms. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** A connection that stayed up this long resets the backoff. Default 5 000 ms. */
  stableAfter?: number;
  /** Bounds of the buffer of events that arrived before their handler. Defaults: 1000 events, 1 MiB, 30 000 ms. */
  pending?: Partial<PendingLimits>;
  /** Most publishes waiting to be sent or acknowledged. Default 1000. */
  maxQueuedPublishes?: number;
  /** A WebSocket constructor, for runtimes without a global one (Node 20 without --experimental-websocket: pass `ws`). */
  WebSocket?: WebSocketCtor;
  /** A fetch function. Default the global fetch. */
  fetch?: typeof fetch;
}

export const defaults = {
  transports: ['websocket', 'sse', 'longpoll'] as TransportName[],
  heartbeatTimeout: 10_000,
  sseHeartbeatTimeout: 35_000,
  connectTimeout: 10_000,
  requestTimeout: 15_000,
  pollWait: 25_000,
  minReconnectDelay: 500,
  maxReconnectDelay: 20_000,
  stableAfter: 5_000,
  maxQueuedPublishes: 1000,
};

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

/** Why the state changed: an {@link EndReason} of the transport, or one of these. */
export type StateReason = EndReason | 'connect' | 'connected' | 'disconnect' | 'offline' | 'online' | 'transport-fallback';

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  reason: StateReason;
  /** The server's error code (for `server-error`, e.g. `slow_consumer`, `kicked`). */
  code?: string;
  message?: string;
  /** The transport in use (connected) or being tried (connecting). */
  transport: TransportName;
  /** connecting: how long until the next attempt, in ms. */
  delay?: number;
}

export type ClientEvents = {
  state: [StateChange];
  connecting: [StateChange];
  connected: [StateChange];
  disconnected: [StateChange];
  /** Events that could not be held for a handler (buffer bounds or TTL): never dropped silently. */
  dropped: [DroppedReport];
  /** A gap on a subscription that has no `gap` listener of its own. */
  gap: [GapInfo];
  /** Errors nobody waits for (a subscription failing with no `error` listener is also thrown asynchronously). */
  error: [TetherError];
};

export interface PublishOptions {
  signal?: AbortSignal;
  /** Default: a fresh random key per call, kept across its retries. */
  idempotencyKey?: string;
}

interface QueuedPublish {
  channel: string;
  data: unknown;
  key: string;
  sending: boolean;
  /** How many times it was sent (each send's failure only counts if no later send exists). */
  sends: number;
  serverRetries: number;
  resolve(a: PublishAck): void;
  reject(e: unknown): void;
  cleanup(): void;
}

const retryable = new Set(['disconnected', 'network', 'timeout', 'unavailable', 'too_many_requests', 'internal', 'transport_blocked']);

/**
 * Client is one logical connection to tether: one state machine over whichever
 * transport works, the subscriptions (resumed by cursor on every reconnect),
 * the publish queue, and jobs.
 */
export class Client extends Emitter<ClientEvents> {
  readonly jobs: Jobs;
  /** @internal */
  readonly http: HTTPContext;
  /** @internal */
  readonly pending: PendingBuffer;

  private o: typeof defaults & ClientOptions;
  private st: ConnectionState = 'disconnected';
  private ti = 0;
  private t: Transport | null = null;
  private openedAt = 0;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** The WebSocket token refresh of the current connection (see refreshLater). */
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private offline = false;
  private everOpened = new Set<TransportName>();
  private everSubscribed = new Set<TransportName>();
  /** The last subscribe sent for each subscription, settled or not. */
  private inFlight = new WeakMap<Subscription, Promise<void>>();
  private subs = new Map<string, Subscription>();
  private queue: QueuedPublish[] = [];
  private pumpTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private detachNet: () => void = () => {};

  constructor(opts: ClientOptions = {}) {
    super();
    const loc = (globalThis as { location?: { origin?: string } }).location;
    const url = opts.url ?? loc?.origin;
    if (!url) throw new TetherError('bad_request', 'tether: ClientOptions.url is required outside browsers');
    const o = { ...defaults } as typeof defaults & ClientOptions;
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) (o as any)[k] = v;
    if (!o.transports.length) throw new TetherError('bad_request', 'tether: ClientOptions.transports is empty');
    this.o = o;
    if (!o.WebSocket) o.WebSocket = globalWebSocket();
    if (!o.WebSocket) o.transports = o.transports.filter((t) => t !== 'websocket');
    const f = o.fetch ?? (globalThis.fetch as typeof fetch).bind(globalThis);
    this.http = { base: httpBase(url), fetch: f, requestTimeout: o.requestTimeout, ...(o.getToken ? { getToken: o.getToken } : {}) };
    this.pending = new PendingBuffer({ ...defaultPendingLimits, ...opts.pending }, (r) => this.emit('dropped', r));
    this.jobs = new Jobs(this);
    this.watchNetwork();
    if (opts.autoConnect !== false) this.connect();
  }

  get state(): ConnectionState {
    return this.st;
  }

  /** The transport in use or being tried. */
  get transport(): TransportName {
    return this.o.transports[this.ti]!;
  }

  /** connect starts connecting (if disconnected); the client then reconnects by itself until disconnect(). */
  connect(): void {
    if (this.closed) throw new TetherError('closed', 'client closed');
    if (this.st !== 'disconnected') return;
    this.setState('connecting', { reason: 'connect' });
    this.attempt();
  }

  /** disconnect closes the connection and stops reconnecting; subscriptions and queued publishes are kept for connect(). */
  disconnect(): void {
    if (this.st === 'disconnected') return;
    this.stopTransport();
    this.setState('disconnected', { reason: 'disconnect' });
  }

  /** close disconnects for good: queued publishes reject with `closed`, subscriptions end. */
  close(): void {
    if (this.closed) return;
    this.disconnect();
    this.closed = true;
    this.detachNet();
    const err = new TetherError('closed', 'client closed');
    for (const p of this.queue.splice(0)) {
      p.cleanup();
      p.reject(err);
    }
    for (const s of [...this.subs.values()]) s.unsubscribe();
    this.pending.clear();
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
  }

  /** ready resolves when connected (at once if connected). */
  ready(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.st === 'connected') return Promise.resolve();
    return waitFor<void>((resolve) => this.on('connected', () => resolve()), opts.signal);
  }

  /**
   * subscribe reads `channel` after `after` (`"0"`: from the oldest retained;
   * absent: only what is published from now on). The subscription resumes by
   * itself after every reconnect.
   */
  subscribe(channel: string, opts: { after?: string } = {}): Subscription {
    if (this.closed) throw new TetherError('closed', 'client closed');
    if (this.subs.has(channel)) throw new TetherError('already_subscribed', `already subscribed to ${channel}`);
    const s = new Subscription(channel, opts.after, this);
    this.subs.set(channel, s);
    if (this.st === 'connected' && this.t) this.subscribeOn(this.t, s);
    return s;
  }

  /** subscription returns the subscription to channel, if any. */
  subscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /**
   * publish appends data to channel and resolves with its cursor once it is
   * durable. Each call has an idempotency key, so a publish retried across
   * reconnects is appended once. While disconnected, publishes wait in a
   * bounded queue; publishes to one channel are sent one at a time, in order.
   */
  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishAck> {
    if (this.closed) return Promise.reject(new TetherError('closed', 'client closed'));
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    if (this.queue.length >= this.o.maxQueuedPublishes) {
      return Promise.reject(new TetherError('queue_full', `the publish queue holds ${this.queue.length} (maxQueuedPublishes)`));
    }
    return new Promise<PublishAck>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = () => {
        const i = this.queue.indexOf(p);
        if (i >= 0) this.queue.splice(i, 1);
        reject(abortError(signal!));
        this.pump();
      };
      const p: QueuedPublish = {
        channel,
        data,
        key: opts.idempotencyKey ?? randomId(),
        sending: false,
        sends: 0,
        serverRetries: 0,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(p);
      this.pump();
    });
  }

  /** queuedPublishes is how many publishes wait to be sent or acknowledged. */
  get queuedPublishes(): number {
    return this.queue.length;
  }

  // ---- connection state machine ----

  private setState(state: ConnectionState, c: Omit<StateChange, 'state' | 'previous' | 'transport'>): void {
    const previous = this.st;
    this.st = state;
    const change: StateChange = { state, previous, transport: this.transport, ...c };
    this.emit('state', change);
    this.emit(state, change);
  }

  private attempt(): void {
    this.retryTimer = null;
    if (this.st !== 'connecting' || this.offline) return;
    const name = this.transport;
    let t: Transport;
    const sink: TransportSink = {
      opened: () => this.t === t && this.onOpened(t),
      message: (ch, cur, d, time, size) => {
        if (this.t === t) this.subs.get(ch)?.receive(cur, d, time, size);
      },
      gap: (ch, after, earliest) => {
        if (this.t === t) this.subs.get(ch)?.gap({ channel: ch, after, earliest });
      },
      subError: (ch, err) => {
        if (this.t === t) this.subs.get(ch)?.failed(err);
      },
      end: (info) => {
        if (this.t === t) this.onEnd(t, info);
      },
    };
    if (name === 'websocket') {
      this.wsURL().then(
        ({ url, token }) => {
          if (this.st !== 'connecting' || this.t !== null) return;
          const ws = new WSTransport(url, this.o.WebSocket!, this.o.heartbeatTimeout, this.o.connectTimeout, {
            ...sink,
            opened: () => {
              if (this.t !== ws) return;
              if (token) this.refreshLater(ws, token);
              this.onOpened(ws);
            },
          }, token);
          t = ws;
          this.t = t;
          t.start();
        },
        (err) => {
          // getToken failed: report it, and count this as a failed attempt.
          this.emit('error', err instanceof TetherError ? err : new TetherError('bad_request', `getToken: ${String(err)}`, { cause: err }));
          if (this.st !== 'connecting' || this.t !== null) return;
          const delay = backoffDelay(this.attempts++, this.o.minReconnectDelay, this.o.maxReconnectDelay);
          this.emit('state', { state: 'connecting', previous: 'connecting', reason: 'transport-error', message: 'getToken failed', transport: this.transport, delay });
          this.retryTimer = setTimeout(() => this.attempt(), delay);
        },
      );
      return;
    }
    t = new HTTPTransport(name, this.http, { connectTimeout: this.o.connectTimeout, sseHeartbeatTimeout: this.o.sseHeartbeatTimeout, pollWait: this.o.pollWait }, sink);
    this.t = t;
    t.start();
  }

  private async wsURL(): Promise<{ url: string; token?: string }> {
    let url = wsURL(this.http.base);
    if (this.o.session) url = addQuery(url, 'session', this.o.session);
    if (this.o.getToken) {
      const tok = await this.o.getToken();
      if (tok) return { url, token: tok }; // offered as a subprotocol, not put in the URL
    }
    return { url };
  }

  /**
   * refreshLater keeps a WebSocket connection's token fresh: at about 80% of
   * the token's remaining life (at least a second before its `exp`) it asks
   * getToken again and sends the new token as a `refresh` (docs/protocol.md,
   * "Expiry and refresh"). A refused refresh or a failing getToken ends the
   * connection instead, and the client reconnects with a fresh token,
   * resuming every subscription by cursor. A token without `exp` (or not a
   * JWT) is never refreshed.
   */
  private refreshLater(t: WSTransport, token: string): void {
    this.clearRefresh();
    const exp = tokenExpiry(token);
    if (exp === undefined) return;
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      let fresh: string | undefined | null;
      try {
        fresh = await this.o.getToken!();
      } catch (err) {
        if (this.t !== t) return;
        this.emit('error', err instanceof TetherError ? err : new TetherError('bad_request', `getToken: ${String(err)}`, { cause: err }));
        this.onEnd(t, { reason: 'token-refresh', message: 'getToken failed for a token refresh', opened: true });
        return;
      }
      if (this.t !== t) return;
      if (!fresh) {
        this.onEnd(t, { reason: 'token-refresh', message: 'getToken returned no token for a token refresh', opened: true });
        return;
      }
      try {
        await t.refresh(fresh);
      } catch (err) {
        if (this.t !== t) return;
        const code = err instanceof TetherError ? err.code : undefined;
        this.onEnd(t, { reason: 'token-refresh', ...(code ? { code } : {}), message: `token refresh refused: ${err instanceof Error ? err.message : String(err)}`, opened: true });
        return;
      }
      if (this.t === t) this.refreshLater(t, fresh);
    }, refreshDelay(exp));
  }

  private clearRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private onOpened(t: Transport): void {
    this.openedAt = Date.now();
    this.everOpened.add(t.name);
    this.setState('connected', { reason: 'connected' });
    for (const s of this.subs.values()) this.subscribeOn(t, s);
    this.pump();
  }

  private subscribeOn(t: Transport, s: Subscription): void {
    s.setState('subscribing', 'subscribe');
    const p = t.subscribe(s.channel, s.resumeAfter);
    this.inFlight.set(s, p.then(() => {}, () => {}));
    p.then(
      (cursor) => {
        if (this.t !== t) return;
        this.everSubscribed.add(t.name);
        if (this.subs.get(s.channel) === s) s.started(cursor);
      },
      (err) => {
        if (this.t !== t || this.subs.get(s.channel) !== s) return;
        if (err instanceof TetherError && isPermanent(err.code)) s.failed(err);
        // Anything else ends the transport, and the next connection resubscribes.
      },
    );
  }

  private async onEnd(t: Transport, info: EndInfo): Promise<void> {
    this.t = null;
    this.clearRefresh();
    t.close();
    const lived = info.opened ? Date.now() - this.openedAt : 0;
    if (lived >= this.o.stableAfter) this.attempts = 0;
    let reason: StateReason = info.reason;
    let delay: number | undefined;
    // Blocked, not down: the server answers /healthz, and this transport never worked in this client
    // (a restarting server refuses WebSocket too, and a proxy in front of it answers 502 meanwhile).
    const blocked =
      (info.reason === 'transport-blocked' && !this.everSubscribed.has(t.name)) ||
      (!info.opened && t.name === 'websocket' && !this.everOpened.has('websocket'));
    if (blocked && (await this.reachable())) {
      if (this.ti < this.o.transports.length - 1) {
        this.ti++;
        reason = 'transport-fallback';
        delay = 0;
      }
    }
    if (this.st === 'disconnected' || this.t !== null) return; // disconnect() or another attempt meanwhile
    if (delay === undefined) {
      delay = info.reason === 'shutdown' && info.reconnectAfterMs !== undefined
        ? info.reconnectAfterMs
        : backoffDelay(this.attempts++, this.o.minReconnectDelay, this.o.maxReconnectDelay);
    }
    for (const s of this.subs.values()) if (s.state === 'subscribed') s.setState('subscribing', info.reason);
    for (const p of this.queue) p.sending = false;
    const c: Omit<StateChange, 'state' | 'previous' | 'transport'> = { reason, message: info.message, delay };
    if (info.code) c.code = info.code;
    if (this.st === 'connected') this.setState('connecting', c);
    else this.emit('state', { state: 'connecting', previous: 'connecting', transport: this.transport, ...c });
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }

  /** reachable asks /healthz whether the server answers HTTP (telling "WebSocket blocked" from "server down"). */
  private async reachable(): Promise<boolean> {
    try {
      await httpJSON(this.http, 'GET', '/healthz', { timeout: this.o.connectTimeout });
      return true;
    } catch {
      return false;
    }
  }

  private stopTransport(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.clearRefresh();
    const t = this.t;
    this.t = null;
    t?.close();
    for (const s of this.subs.values()) if (s.state === 'subscribed') s.setState('subscribing', 'disconnect');
    for (const p of this.queue) p.sending = false;
  }

  /** watchNetwork follows the browser's online/offline events (window and Web Workers). */
  private watchNetwork(): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void; navigator?: { onLine?: boolean } };
    if (typeof g.addEventListener !== 'function' || typeof g.navigator?.onLine !== 'boolean') return;
    const off = () => {
      this.offline = true;
      if (this.st === 'disconnected') return;
      const was = this.st;
      this.stopTransport();
      if (was === 'connected') this.setState('connecting', { reason: 'offline' });
    };
    const on = () => {
      this.offline = false;
      if (this.st !== 'connecting') return;
      this.attempts = 0;
      this.emit('state', { state: 'connecting', previous: 'connecting', reason: 'online', transport: this.transport, delay: 0 });
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.attempt();
    };
    g.addEventListener('offline', off);
    g.addEventListener('online', on);
    this.detachNet = () => {
      g.removeEventListener?.('offline', off);
      g.removeEventListener?.('online', on);
    };
  }

  // ---- publish queue ----

  private pump(): void {
    const t = this.t;
    if (this.st !== 'connected' || !t) return;
    const busy = new Set<string>();
    let inFlight = 0;
    for (const p of this.queue) if (p.sending) inFlight++;
    for (const p of this.queue) {
      if (inFlight >= 32) break;
      if (busy.has(p.channel)) continue;
      busy.add(p.channel);
      if (p.sending) continue;
      p.sending = true;
      inFlight++;
      this.send(t, p);
    }
  }

  private send(t: Transport, p: QueuedPublish): void {
    const seq = ++p.sends;
    t.publish(p.channel, p.data, p.key).then(
      (ack) => {
        const i = this.queue.indexOf(p);
        if (i < 0) return; // aborted meanwhile
        this.queue.splice(i, 1);
        p.cleanup();
        p.resolve(ack); // any send's ack settles it: all sends carry the same key
        this.pump();
      },
      (err) => {
        if (this.queue.indexOf(p) < 0 || seq !== p.sends) return; // gone, or a later send is in flight
        p.sending = false;
        const code = err instanceof TetherError ? err.code : 'network';
        const transportGone = this.t !== t || code === 'disconnected' || code === 'network' || code === 'timeout';
        if (transportGone) return; // resent on the next connection, same key
        if (retryable.has(code) && ++p.serverRetries <= 5) {
          if (!this.pumpTimer) this.pumpTimer = setTimeout(() => ((this.pumpTimer = null), this.pump()), 200 * 2 ** p.serverRetries);
          return;
        }
        this.queue.splice(this.queue.indexOf(p), 1);
        p.cleanup();
        p.reject(err);
        this.pump();
      },
    );
  }

  // ---- SubscriptionHost ----

  /** @internal */
  removeSubscription(s: Subscription): void {
    if (this.subs.get(s.channel) !== s) return;
    this.subs.delete(s.channel);
    const t = this.t;
    if (!t || this.st !== 'connected' || s.state === 'unsubscribed') return;
    // The protocol asks for an unsubscribe only once its subscribe was answered.
    const before = this.inFlight.get(s) ?? Promise.resolve();
    before.then(() => (this.t === t ? t.unsubscribe(s.channel) : undefined)).catch(() => {});
  }

  /** @internal */
  unhandledGap(g: GapInfo): boolean {
    return this.emit('gap', g);
  }
}
