/**
 * The job worker: runs handlers for the job types it names, speaking the
 * worker part of the framed protocol (docs/protocol.md "Workers") over a
 * WebSocket. Works in Node (20 with --experimental-websocket or a `WebSocket`
 * option; 22+ as is), in browsers and in Web Workers.
 *
 * Each attempt's handler gets an AbortSignal that fires when the server
 * cancels it (pushed `job.cancel`: API cancel, client gone, timeout), when the
 * attempt is fenced, when the connection is lost without a shutdown, and on
 * stop() after its grace. The worker itself, and whatever it loaded, lives on.
 */
import { Emitter } from './emitter.js';
import { TetherError } from './errors.js';
import { FrameSocket, globalWebSocket, tokenProtocols, type Frame, type WebSocketCtor } from './frames.js';
import type { EndInfo } from './transport.js';
import { backoffDelay, randomId, refreshDelay, tokenExpiry, type TokenSource } from './util.js';

export interface WorkerOptions {
  /** The server: `http://host:port`, `ws://host:port` or a full `ws://host:port/v1/ws`. */
  url: string;
  /** The worker id, kept across reconnects so that a server restart does not cost running attempts. Default `js-` + random. */
  id?: string;
  /** Most attempts at once. Default 1. */
  concurrency?: number;
  /** How often leases are renewed (match the server's --job-heartbeat). Default 1000 ms. */
  heartbeatInterval?: number;
  /** A server that sent nothing for this long is dead. Default 10 000 ms. */
  heartbeatTimeout?: number;
  /** Bound on opening the connection. Default 10 000 ms. */
  connectTimeout?: number;
  /** stop(): how long running handlers may finish before they are cancelled and handed back. Default 10 000 ms. */
  shutdownGrace?: number;
  /** Reconnect backoff (full jitter). Defaults 500 and 20 000 ms. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  getToken?: TokenSource;
  WebSocket?: WebSocketCtor;
}

/** One attempt of a job, as the handler sees it. */
export interface JobRun {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
  /** The attempt's timeout (RFC 3339); the server cancels it then. */
  deadline?: string;
  channel: string;
}

export interface JobContext {
  /** Fires when the attempt must stop; `signal.reason` is a TetherError with code `job_canceled` and `details.reason` (`api`, `client-gone`, `timeout`, `fenced`, `connection-lost`, `shutdown`). */
  signal: AbortSignal;
  /** Appends a `progress` event to the job's channel; rejects with `fenced` if the attempt is no longer current. */
  progress(data: unknown): Promise<void>;
  job: JobRun;
}

export type JobHandler = (payload: any, ctx: JobContext) => unknown | Promise<unknown>;

export type WorkerEvents = {
  /** connected: the `worker` request was accepted; disconnected: the connection ended (with why); stopped: stop() finished. */
  state: [{ state: 'connecting' | 'connected' | 'stopped'; reason: string; code?: string; message?: string }];
  /** A job attempt started or ended (`succeeded`, `failed`, `canceled`, `fenced`, `released`, `dropped`). */
  job: [{ job: JobRun; phase: 'started' | 'ended'; outcome?: string }];
  error: [TetherError];
};

interface Run {
  job: JobRun;
  ac: AbortController;
  running: boolean;
  /** set once the handler returned: the job.done frame fields, until the server answered it. */
  outcome?: Record<string, unknown>;
  cancelReason?: string;
  fenced: boolean;
  releasing: boolean;
  settled: Promise<void>;
  /** The job.done in flight: settles when answered (or the connection ends). */
  reporting?: Promise<void>;
}

const key = (job: string, attempt: number) => job + '#' + attempt;

/** Worker runs job handlers; see the module comment. */
export class Worker extends Emitter<WorkerEvents> {
  readonly id: string;
  private o: Required<Omit<WorkerOptions, 'getToken' | 'WebSocket' | 'id'>> & WorkerOptions;
  private handlers = new Map<string, JobHandler>();
  private runs = new Map<string, Run>();
  private fs: FrameSocket | null = null;
  private registered = false;
  private hbTimer: ReturnType<typeof setInterval> | null = null;
  /** The token refresh of the current connection (see refreshLater). */
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private attempts = 0;
  private started = false;
  private stopping = false;
  private wsCtor: WebSocketCtor;

  constructor(opts: WorkerOptions) {
    super();
    this.o = {
      concurrency: 1,
      heartbeatInterval: 1000,
      heartbeatTimeout: 10_000,
      connectTimeout: 10_000,
      shutdownGrace: 10_000,
      minReconnectDelay: 500,
      maxReconnectDelay: 20_000,
      ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
    } as Worker['o'];
    this.id = opts.id ?? 'js-' + randomId().slice(0, 12);
    const ws = opts.WebSocket ?? globalWebSocket();
    if (!ws) throw new TetherError('bad_request', 'tether: no WebSocket in this runtime: pass WorkerOptions.WebSocket');
    this.wsCtor = ws;
  }

  /** handle registers the handler of a job type; register all before start(). */
  handle(type: string, fn: JobHandler): this {
    this.handlers.set(type, fn);
    return this;
  }

  /** running is how many attempts have a handler running. */
  get running(): number {
    let n = 0;
    for (const r of this.runs.values()) if (r.running) n++;
    return n;
  }

  /** start connects and keeps connecting until stop(). */
  start(): void {
    if (this.started) return;
    if (this.handlers.size === 0) throw new TetherError('bad_request', 'tether: Worker has no handlers');
    this.started = true;
    this.connect();
  }

  private wsURL(): string {
    let u = this.o.url.replace(/^http/, 'ws').replace(/\/+$/, '');
    if (!/\/v1\/ws$/.test(u.replace(/\?.*$/, ''))) u += '/v1/ws';
    return u;
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    if (this.stopping) return;
    this.emit('state', { state: 'connecting', reason: 'connect' });
    let url = this.wsURL();
    let token: string | undefined | null;
    if (this.o.getToken) {
      token = await this.o.getToken();
    }
    // The token rides as a subprotocol, out of the URL (and so out of access logs).
    const protocols = token ? { protocols: tokenProtocols(token) } : {};
    const fs: FrameSocket = new FrameSocket(url, this.wsCtor, { heartbeatTimeout: this.o.heartbeatTimeout, connectTimeout: this.o.connectTimeout, ...protocols }, {
      opened: () => {
        if (token) this.refreshLater(fs, token);
        this.register(fs);
      },
      frame: (f) => this.onFrame(fs, f),
      end: (info) => this.onEnd(fs, info),
    });
    this.fs = fs;
    fs.start();
  }

  /**
   * refreshLater keeps the connection's token fresh, as Client does: at
   * about 80% of its remaining life getToken is asked again and the new
   * token sent as a `refresh`. A worker's connection matters more than a
   * client's: when it ends, the server hands the attempts it runs to other
   * workers, so an expired token would cost every running job its attempt.
   * A refused refresh or a failing getToken ends the connection (and the
   * worker reconnects with a fresh token); a token without `exp` is never
   * refreshed.
   */
  private refreshLater(fs: FrameSocket, token: string): void {
    this.clearRefresh();
    const exp = tokenExpiry(token);
    if (exp === undefined) return;
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      if (this.fs !== fs) return;
      let fresh: string | undefined | null;
      try {
        fresh = await this.o.getToken!();
      } catch (err) {
        this.emit('error', err instanceof TetherError ? err : new TetherError('bad_request', `getToken: ${String(err)}`, { cause: err }));
        if (this.fs === fs) fs.abort('getToken failed for a token refresh');
        return;
      }
      if (this.fs !== fs) return;
      if (!fresh) {
        fs.abort('getToken returned no token for a token refresh');
        return;
      }
      try {
        await fs.request({ type: 'refresh', token: fresh });
      } catch (err) {
        if (this.fs === fs) fs.abort(`token refresh refused: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      if (this.fs === fs) this.refreshLater(fs, fresh);
    }, refreshDelay(exp));
  }

  private clearRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private async register(fs: FrameSocket): Promise<void> {
    try {
      await fs.request({ type: 'worker', worker: this.id, types: [...this.handlers.keys()], concurrency: this.o.concurrency });
    } catch (err) {
      if (err instanceof TetherError && (err.code === 'bad_request' || err.code === 'unknown_type')) {
        this.emit('error', err);
        this.stopping = true;
        fs.close();
        this.emit('state', { state: 'stopped', reason: err.code, message: err.message });
      } else if (this.fs === fs) {
        fs.abort(`worker request failed: ${err instanceof Error ? err.message : String(err)}`); // reconnect, with backoff
      }
      return;
    }
    if (this.fs !== fs) return;
    this.registered = true;
    this.emit('state', { state: 'connected', reason: 'connected' });
    this.heartbeat();
    this.hbTimer = setInterval(() => this.heartbeat(), this.o.heartbeatInterval);
    // Outcomes that the previous connection did not get answered.
    for (const r of this.runs.values()) if (r.outcome) this.report(r);
  }

  private heartbeat(): void {
    const fs = this.fs;
    if (!fs || !this.registered) return;
    const jobs: Record<string, number> = {};
    for (const r of this.runs.values()) if (!r.fenced) jobs[r.job.id] = r.job.attempt;
    fs.request({ type: 'job.heartbeat', jobs }).catch(() => {});
  }

  private onFrame(fs: FrameSocket, f: Frame): void {
    if (this.fs !== fs) return;
    switch (f.type) {
      case 'job':
        this.startRun(f);
        return;
      case 'job.cancel': {
        const r = this.runs.get(key(String(f.job), Number(f.attempt)));
        if (r && r.running) {
          r.cancelReason = String(f.reason ?? 'api');
          r.ac.abort(cancelError(r.cancelReason));
        }
        return;
      }
      case 'job.fenced': {
        const r = this.runs.get(key(String(f.job), Number(f.attempt)));
        if (r) this.fence(r, 'fenced');
        return;
      }
    }
  }

  /** fence drops an attempt for good: its handler is cancelled and its outcome never reported. */
  private fence(r: Run, why: string): void {
    r.fenced = true;
    this.runs.delete(key(r.job.id, r.job.attempt));
    if (r.running) r.ac.abort(cancelError(why));
    this.emit('job', { job: r.job, phase: 'ended', outcome: why === 'fenced' ? 'fenced' : 'dropped' });
  }

  private startRun(f: Frame): void {
    const job: JobRun = {
      id: String(f.job),
      type: String(f.job_type),
      payload: f.payload ?? null,
      attempt: Number(f.attempt),
      channel: String(f.channel ?? 'job.' + f.job),
      ...(typeof f.deadline === 'string' ? { deadline: f.deadline } : {}),
    };
    const k = key(job.id, job.attempt);
    if (this.runs.has(k)) return; // a repeat of an attempt we run
    const ac = new AbortController();
    const r: Run = { job, ac, running: true, fenced: false, releasing: false, settled: Promise.resolve() };
    this.runs.set(k, r);
    const h = this.handlers.get(job.type);
    this.emit('job', { job, phase: 'started' });
    r.settled = this.execute(r, h);
  }

  private async execute(r: Run, h: JobHandler | undefined): Promise<void> {
    const ctx: JobContext = { signal: r.ac.signal, job: r.job, progress: (d) => this.progress(r, d) };
    let outcome: Record<string, unknown>;
    try {
      if (!h) throw new TetherError('no_handler', `no handler for job type ${r.job.type}`);
      const result = await h(r.job.payload, ctx);
      outcome = { result: result === undefined ? null : result };
    } catch (err) {
      outcome = r.cancelReason !== undefined || r.ac.signal.aborted ? { canceled: true } : { error: err instanceof Error ? err.message : String(err) };
    }
    r.running = false;
    if (r.fenced) return;
    if (r.releasing) {
      this.emit('job', { job: r.job, phase: 'ended', outcome: 'released' });
      return; // stop() sends job.release
    }
    r.outcome = outcome;
    this.emit('job', { job: r.job, phase: 'ended', outcome: 'result' in outcome ? 'succeeded' : outcome.canceled ? 'canceled' : 'failed' });
    this.report(r);
  }

  private report(r: Run): void {
    const fs = this.fs;
    if (!fs || !this.registered || !r.outcome) return; // resent after the next registration
    r.reporting = fs.request({ type: 'job.done', job: r.job.id, attempt: r.job.attempt, ...r.outcome }).then(
      () => {
        this.runs.delete(key(r.job.id, r.job.attempt));
      },
      (err) => {
        if (err instanceof TetherError && (err.code === 'fenced' || err.code === 'bad_request')) {
          this.runs.delete(key(r.job.id, r.job.attempt));
        } else if (err instanceof TetherError && (err.code === 'internal' || err.code === 'unavailable' || err.code === 'too_many_requests') && this.fs === fs) {
          setTimeout(() => this.report(r), 500);
        }
        // disconnected: resent after the next registration
      },
    );
  }

  private async progress(r: Run, data: unknown): Promise<void> {
    if (r.fenced) throw new TetherError('fenced', 'the attempt is no longer current');
    const fs = this.fs;
    if (!fs || !this.registered) throw new TetherError('disconnected', 'not connected');
    try {
      await fs.request({ type: 'job.progress', job: r.job.id, attempt: r.job.attempt, data });
    } catch (err) {
      if (err instanceof TetherError && err.code === 'fenced') this.fence(r, 'fenced');
      throw err;
    }
  }

  private onEnd(fs: FrameSocket, info: EndInfo): void {
    if (this.fs !== fs) return;
    this.fs = null;
    this.registered = false;
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = null;
    this.clearRefresh();
    if (info.reason !== 'shutdown' && info.opened) {
      // Without a shutdown the server has already given our running attempts to others. A
      // connection that never opened (the server is still restarting) told the server nothing.
      for (const r of [...this.runs.values()]) if (r.running) this.fence(r, 'connection-lost');
    }
    if (info.opened) this.attempts = 0;
    this.emit('state', { state: 'connecting', reason: info.reason, message: info.message, ...(info.code ? { code: info.code } : {}) });
    if (this.stopping) return;
    const d = info.reason === 'shutdown' && info.reconnectAfterMs !== undefined ? info.reconnectAfterMs : backoffDelay(this.attempts++, this.o.minReconnectDelay, this.o.maxReconnectDelay, 50);
    this.retryTimer = setTimeout(() => this.connect(), d);
  }

  /**
   * stop drains: no new jobs, running handlers get `grace` ms to finish
   * (their outcomes reported as usual), then the rest are cancelled (reason
   * `shutdown`) and handed back with job.release, and the connection closes.
   */
  async stop(opts: { grace?: number } = {}): Promise<void> {
    if (!this.started || this.stopping) {
      this.stopping = true;
      return;
    }
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const fs = this.fs;
    const live = () => fs !== null && this.fs === fs && this.registered;
    if (live()) await fs!.request({ type: 'drain' }).catch(() => {});
    const grace = opts.grace ?? this.o.shutdownGrace;
    const runs = () => [...this.runs.values()].filter((r) => r.running);
    let gt: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(runs().map((r) => r.settled)), new Promise((res) => (gt = setTimeout(res, grace)))]);
    clearTimeout(gt);
    const left = runs();
    for (const r of left) {
      r.releasing = true;
      r.ac.abort(cancelError('shutdown'));
    }
    if (live()) {
      await Promise.all(left.map((r) => fs!.request({ type: 'job.release', job: r.job.id, attempt: r.job.attempt }).catch(() => {})));
      // Let the job.done of attempts that finished in the grace be answered (bounded).
      const answers = [...this.runs.values()].filter((r) => r.outcome && r.reporting).map((r) => r.reporting!);
      let t: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.all(answers), new Promise((res) => (t = setTimeout(res, 2000)))]);
      clearTimeout(t);
      fs!.send({ type: 'bye' });
    }
    for (const r of left) this.runs.delete(key(r.job.id, r.job.attempt));
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = null;
    this.clearRefresh();
    this.fs = null;
    fs?.close();
    this.emit('state', { state: 'stopped', reason: 'stop' });
  }
}

function cancelError(reason: string): TetherError {
  return new TetherError('job_canceled', `job attempt canceled: ${reason}`, { details: { reason } });
}

let lastTimerYield = 0;

/**
 * yieldToEventLoop lets the event loop run (so that a `job.cancel` frame can
 * arrive and fire the signal) between slices of a long synchronous
 * computation, e.g. a WebAssembly loop called in chunks. In Node it is
 * setImmediate (I/O is polled before immediates run). In browsers and Web
 * Workers it is a MessageChannel round (no 4 ms timer clamp), except that at
 * least every 8 ms it is a setTimeout(0): in Chromium 156 on a noisy 2-core
 * machine, a loop yielding only through MessageChannel delayed WebSocket
 * messages (median 22 ms from cancel to signal, 9 ms with setTimeout only,
 * 10-20 ms with this mix, which keeps most of MessageChannel's throughput),
 * and `scheduler.yield()` starved them completely (the cancel never arrived).
 */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void; MessageChannel?: typeof MessageChannel };
  if (typeof g.setImmediate === 'function') return new Promise((r) => g.setImmediate!(r));
  const now = Date.now();
  if (typeof g.MessageChannel === 'function' && now - lastTimerYield < 8) {
    return new Promise((r) => {
      const ch = new g.MessageChannel!();
      ch.port1.onmessage = () => {
        ch.port1.close();
        r();
      };
      ch.port2.postMessage(0);
    });
  }
  lastTimerYield = now;
  return new Promise((r) => setTimeout(r, 0));
}

export { TetherError } from './errors.js';
