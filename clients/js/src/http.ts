import { TetherError } from './errors.js';
import type { EndInfo, PublishAck, Transport, TransportName, TransportSink } from './transport.js';
import { linkSignals, networkError, type TokenSource } from './util.js';

/** HTTPContext is what every HTTP call needs: where, how to authenticate, and bounds. */
export interface HTTPContext {
  base: string;
  getToken?: TokenSource;
  fetch: typeof fetch;
  /** Bound on a plain request (not a long-poll) in ms. */
  requestTimeout: number;
}

export interface HTTPAnswer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** authHeaders adds `Authorization: Bearer` when getToken gives a token. */
export async function authHeaders(ctx: HTTPContext, h: Record<string, string> = {}): Promise<Record<string, string>> {
  if (ctx.getToken) {
    const t = await ctx.getToken();
    if (t) h['Authorization'] = 'Bearer ' + t;
  }
  return h;
}

/**
 * httpJSON makes one request and reads a JSON answer. Tether's errors
 * (`{"error":{"code","message"}}`) become TetherError with that code; an
 * answer that is not tether's (a proxy's 403 page, say) becomes `bad_response`
 * with details.foreign = true; a request that did not get through becomes
 * `network` (or `timeout`).
 */
export async function httpJSON<T = any>(
  ctx: HTTPContext,
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal; timeout?: number } = {},
): Promise<HTTPAnswer<T>> {
  const timeout = opts.timeout ?? ctx.requestTimeout;
  const timer = new AbortController();
  const t = setTimeout(() => timer.abort(new TetherError('timeout', `${method} ${path}: no answer within ${timeout} ms`)), timeout);
  const link = linkSignals(opts.signal, timer.signal);
  try {
    const headers = await authHeaders(ctx, { Accept: 'application/json', ...opts.headers });
    const init: RequestInit = { method, headers, signal: link.signal };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await ctx.fetch(ctx.base + path, init);
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? err;
      if (timer.signal.aborted) throw timer.signal.reason;
      throw networkError(`${method} ${path}`, err);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? err;
      if (timer.signal.aborted) throw timer.signal.reason;
      throw networkError(`${method} ${path}`, err);
    }
    return { status: res.status, body: parseAnswer(res, text, `${method} ${path}`), headers: res.headers };
  } finally {
    clearTimeout(t);
    link.unlink();
  }
}

function parseAnswer(res: Response, text: string, what: string): any {
  let body: any;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.ok && body !== undefined) return body;
  if (body && typeof body === 'object' && body.error && typeof body.error.code === 'string') {
    throw new TetherError(body.error.code, String(body.error.message ?? body.error.code), { status: res.status, details: body.error });
  }
  throw new TetherError('bad_response', `${what}: HTTP ${res.status} that is not tether's`, { status: res.status, details: { foreign: true } });
}

/** isForeign reports an answer that did not come from tether (a proxy, a firewall page). */
export function isForeign(err: unknown): boolean {
  return err instanceof TetherError && err.code === 'bad_response' && err.details?.foreign === true;
}

/**
 * isRefusal reports a foreign answer that refuses the request (403, 405, an
 * HTML page...). A gateway's 502/503/504 is not a refusal: the proxy could
 * not reach tether (it is restarting), which is a network failure.
 */
export function isRefusal(err: unknown): boolean {
  return isForeign(err) && ![502, 503, 504].includes((err as TetherError).status ?? 0);
}

export interface HTTPTransportOptions {
  connectTimeout: number;
  /** SSE: a stream silent for this long is dead (server comments come every --sse-heartbeat, 15 s). */
  sseHeartbeatTimeout: number;
  /** Long-poll: the wait each poll asks for. */
  pollWait: number;
}

/**
 * HTTPTransport is the fallback when WebSocket is blocked: one SSE stream (or
 * one long-poll loop) per subscribed channel, publishes as HTTP POSTs. Any
 * stream or request that fails on the network ends the whole transport, so
 * the client has one connection state and one reconnect loop for all of them.
 */
export class HTTPTransport implements Transport {
  private streams = new Map<string, AbortController>();
  private done = false;
  private root = new AbortController();

  constructor(
    readonly name: Exclude<TransportName, 'websocket'>,
    private readonly ctx: HTTPContext,
    private readonly o: HTTPTransportOptions,
    private readonly sink: TransportSink,
  ) {}

  start(): void {
    httpJSON(this.ctx, 'GET', '/healthz', { signal: this.root.signal, timeout: this.o.connectTimeout }).then(
      () => {
        if (!this.done) this.sink.opened();
      },
      (err) => this.fail({ reason: err instanceof TetherError && err.code === 'timeout' ? 'connect-timeout' : 'transport-error', message: String(err?.message ?? err), opened: false }),
    );
  }

  private fail(info: EndInfo): void {
    if (this.done) return;
    this.done = true;
    this.root.abort();
    this.streams.clear();
    this.sink.end(info);
  }

  close(): void {
    this.done = true;
    this.root.abort();
    this.streams.clear();
  }

  /** failFrom ends the transport for a request error that is not the server's answer. */
  private failFrom(err: unknown): never {
    if (err instanceof TetherError && !this.done) {
      if (isRefusal(err)) this.fail({ reason: 'transport-blocked', message: err.message, opened: true });
      else if (err.code === 'network' || err.code === 'timeout' || isForeign(err)) this.fail({ reason: 'transport-error', message: err.message, opened: true });
    }
    throw err;
  }

  private enc(channel: string): string {
    return '/v1/channels/' + encodeURIComponent(channel);
  }

  /** latest learns the channel's latest cursor: a long-poll without `after` that does not wait. */
  private async latest(channel: string, signal: AbortSignal): Promise<string> {
    try {
      const r = await httpJSON(this.ctx, 'GET', this.enc(channel) + '/messages?wait=0', { signal, timeout: this.o.connectTimeout });
      return String(r.body.next);
    } catch (err) {
      return this.failFrom(err);
    }
  }

  async publish(channel: string, data: unknown, idempotencyKey: string): Promise<PublishAck> {
    if (this.done) throw new TetherError('disconnected', 'not connected');
    let r: HTTPAnswer;
    try {
      r = await httpJSON(this.ctx, 'POST', this.enc(channel) + '/messages', { body: data, headers: { 'Idempotency-Key': idempotencyKey }, signal: this.root.signal });
    } catch (err) {
      if (err instanceof TetherError && (err.code === 'network' || err.code === 'timeout' || isForeign(err))) {
        this.failFrom(err);
      }
      if (this.root.signal.aborted) throw new TetherError('disconnected', 'connection ended');
      throw err;
    }
    return { cursor: String(r.body.id), duplicate: r.headers.get('Idempotent-Replayed') === 'true' };
  }

  async unsubscribe(channel: string): Promise<void> {
    this.streams.get(channel)?.abort();
    this.streams.delete(channel);
  }

  async subscribe(channel: string, after: string | undefined): Promise<string> {
    if (this.done) throw new TetherError('disconnected', 'not connected');
    this.streams.get(channel)?.abort();
    const ac = new AbortController();
    this.streams.set(channel, ac);
    const link = linkSignals(this.root.signal, ac.signal);
    const start = after ?? (await this.latest(channel, link.signal));
    if (this.name === 'sse') await this.openStream(channel, start, link.signal);
    else this.pollLoop(channel, start, link.signal);
    return start;
  }

  // ---- SSE ----

  private async openStream(channel: string, after: string, signal: AbortSignal): Promise<void> {
    const timer = new AbortController();
    const t = setTimeout(() => timer.abort(), this.o.connectTimeout);
    const link = linkSignals(signal, timer.signal);
    let res: Response;
    try {
      const headers = await authHeaders(this.ctx, { Accept: 'text/event-stream' });
      res = await this.ctx.fetch(this.ctx.base + this.enc(channel) + '/events?after=' + encodeURIComponent(after), { headers, signal: link.signal, cache: 'no-store' });
    } catch (err) {
      if (signal.aborted) throw new TetherError('disconnected', 'connection ended');
      // A server that answers /healthz but not this stream within the bound is behind something that holds streams.
      if (timer.signal.aborted) this.fail({ reason: 'transport-blocked', message: `no SSE answer within ${this.o.connectTimeout} ms`, opened: true });
      return this.failFrom(networkError('SSE', err));
    } finally {
      clearTimeout(t);
    }
    const ct = res.headers.get('Content-Type') ?? '';
    if (!res.ok || !ct.startsWith('text/event-stream') || !res.body) {
      let text = '';
      try {
        text = await res.text();
      } catch {
        /* ignore */
      }
      try {
        parseAnswer(res, text, 'SSE');
      } catch (err) {
        if (!isForeign(err)) throw err; // tether's answer: bad_cursor, cursor_ahead, ...
        if (!isRefusal(err)) return this.failFrom(err); // a gateway that could not reach tether
      }
      this.fail({ reason: 'transport-blocked', message: `SSE refused: HTTP ${res.status} ${ct}`, opened: true });
      throw new TetherError('transport_blocked', 'SSE refused');
    }
    this.readStream(channel, res.body, signal).catch(() => {});
  }

  private async readStream(channel: string, body: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<void> {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = { id: '', event: '', data: [] as string[] };
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (watchdog) clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        this.fail({ reason: 'heartbeat-timeout', message: `SSE stream silent for ${this.o.sseHeartbeatTimeout} ms`, opened: true });
        reader.cancel().catch(() => {});
      }, this.o.sseHeartbeatTimeout);
    };
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    arm();
    try {
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (err) {
          if (!signal.aborted) this.fail({ reason: 'transport-error', message: `SSE read: ${String(err)}`, opened: true });
          return;
        }
        if (r.done) {
          if (!signal.aborted) this.fail({ reason: 'transport-closed', message: 'SSE stream ended', opened: true });
          return;
        }
        arm();
        buf += dec.decode(r.value, { stream: true });
        let i: number;
        while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
          if (line === '') {
            if (ev.data.length > 0 || ev.event !== '') this.dispatch(channel, ev);
            ev = { id: '', event: '', data: [] };
            if (signal.aborted || this.done) return;
            continue;
          }
          if (line[0] === ':') continue; // comment: heartbeat or departure probe
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let value = c < 0 ? '' : line.slice(c + 1);
          if (value[0] === ' ') value = value.slice(1);
          if (field === 'data') ev.data.push(value);
          else if (field === 'id') ev.id = value;
          else if (field === 'event') ev.event = value;
        }
      }
    } finally {
      if (watchdog) clearTimeout(watchdog);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private dispatch(channel: string, ev: { id: string; event: string; data: string[] }): void {
    const text = ev.data.join('\n');
    let d: any;
    try {
      d = JSON.parse(text);
    } catch {
      return;
    }
    switch (ev.event) {
      case '':
      case 'message':
        this.sink.message(channel, ev.id, d, undefined, text.length);
        return;
      case 'gap':
        this.sink.gap(channel, String(d.after), String(d.earliest));
        return;
      case 'shutdown':
        this.fail({ reason: 'shutdown', message: 'the server is stopping', reconnectAfterMs: Number(d.reconnect_after_ms) || 0, opened: true });
        return;
    }
  }

  // ---- long-poll ----

  private async pollLoop(channel: string, after: string, signal: AbortSignal): Promise<void> {
    let cursor = after;
    let wait = 0; // the first poll answers at once
    while (!signal.aborted && !this.done) {
      let r: HTTPAnswer;
      try {
        r = await httpJSON(this.ctx, 'GET', `${this.enc(channel)}/messages?after=${encodeURIComponent(cursor)}&wait=${wait / 1000}`, {
          signal,
          timeout: wait + this.o.connectTimeout,
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof TetherError && (err.code === 'network' || err.code === 'timeout' || isForeign(err))) {
          try {
            this.failFrom(err);
          } catch {
            return;
          }
        }
        if (err instanceof TetherError && err.code === 'unavailable') {
          // 503 unavailable: the server is stopping (docs/api.md), here without a hint.
          this.fail({ reason: 'shutdown', code: 'unavailable', message: err.message, opened: true });
          return;
        }
        this.sink.subError(channel, err instanceof TetherError ? err : new TetherError('bad_response', String(err)));
        return;
      }
      if (signal.aborted || this.done) return;
      const b = r.body;
      if (b.gap) this.sink.gap(channel, cursor, String(b.earliest));
      for (const m of b.messages ?? []) {
        this.sink.message(channel, String(m.id), m.data, m.time, 0);
        if (signal.aborted || this.done) return;
      }
      if (b.next !== undefined) cursor = String(b.next);
      if (typeof b.reconnect_after_ms === 'number') {
        this.fail({ reason: 'shutdown', message: 'the server is stopping', reconnectAfterMs: b.reconnect_after_ms, opened: true });
        return;
      }
      wait = this.o.pollWait;
    }
  }
}
