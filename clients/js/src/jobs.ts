import type { Client } from './client.js';
import { abortError, TetherError } from './errors.js';
import { httpJSON } from './http.js';
import type { Message, Subscription } from './subscription.js';
import { backoffDelay, delay, randomId } from './util.js';

/** A job as `GET /v1/jobs/{id}` answers it (docs/api.md "Jobs"). */
export interface JobInfo {
  id: string;
  channel: string;
  type: string;
  state: 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'canceled';
  attempt: number;
  result?: unknown;
  error?: string;
  cancel_reason?: string;
  [k: string]: unknown;
}

export interface CreateOptions {
  signal?: AbortSignal;
  /** Per attempt: a Go duration string (`"90s"`) or milliseconds. Server default 10m. */
  timeout?: string | number;
  /** Server default 3. */
  maxAttempts?: number;
  /** `cancel` (default): the job is cancelled when its client really leaves; `detach`: it runs on. */
  onDisconnect?: 'cancel' | 'detach';
  /** Default: a fresh random key, so that a create retried after a network error makes one job. */
  idempotencyKey?: string;
  /**
   * Tell the server you are about to follow the job (`POST /v1/jobs?follow=true`): an
   * `on_disconnect: cancel` job that no follower reaches within its follow grace is then cancelled,
   * so a tab closed between the create and the subscription leaves nothing running. `run` sets it.
   */
  follow?: boolean;
}

export interface RunOptions extends CreateOptions {
  /** Called with each `progress` the handler reports. */
  onProgress?: (data: unknown, info: { attempt: number }) => void;
}

/**
 * Jobs creates, follows and cancels jobs over HTTP and the client's
 * subscriptions. `run` follows the job's channel `job.<id>` (which, over
 * WebSocket and SSE, also makes this client a follower: a tab that closes
 * cancels an `on_disconnect: cancel` job after the server's follow grace).
 */
export class Jobs {
  constructor(private readonly c: Client) {}

  /** create stores a job and answers its id and channel; network failures are retried with the same idempotency key. */
  async create(type: string, payload: unknown, opts: CreateOptions = {}): Promise<{ id: string; channel: string }> {
    const body: Record<string, unknown> = { type, payload: payload ?? null };
    if (opts.timeout !== undefined) body.timeout = typeof opts.timeout === 'number' ? `${opts.timeout}ms` : opts.timeout;
    if (opts.maxAttempts !== undefined) body.max_attempts = opts.maxAttempts;
    if (opts.onDisconnect !== undefined) body.on_disconnect = opts.onDisconnect;
    const key = opts.idempotencyKey ?? randomId();
    for (let n = 0; ; n++) {
      try {
        const r = await httpJSON(this.c.http, 'POST', opts.follow ? '/v1/jobs?follow=true' : '/v1/jobs', { body, headers: { 'Idempotency-Key': key }, ...(opts.signal ? { signal: opts.signal } : {}) });
        return { id: String(r.body.id), channel: String(r.body.channel) };
      } catch (err) {
        if (opts.signal?.aborted) throw abortError(opts.signal);
        if (!(err instanceof TetherError) || !['network', 'timeout', 'unavailable', 'internal'].includes(err.code)) throw err;
        await delay(backoffDelay(n, 200, 5000, 50), opts.signal);
      }
    }
  }

  /** get reads a job. */
  async get(id: string, opts: { signal?: AbortSignal } = {}): Promise<JobInfo> {
    return (await httpJSON(this.c.http, 'GET', '/v1/jobs/' + encodeURIComponent(id), opts)).body;
  }

  /** cancel asks the server to cancel a job; its worker's handler is told at once. */
  async cancel(id: string, opts: { signal?: AbortSignal } = {}): Promise<JobInfo> {
    return (await httpJSON(this.c.http, 'POST', '/v1/jobs/' + encodeURIComponent(id) + '/cancel', opts)).body;
  }

  /**
   * run creates a job, follows it, reports progress, and resolves with its
   * result. It rejects with `job_failed` or `job_canceled`, or, when `signal`
   * fires, with the signal's reason, having asked the server to cancel the job.
   */
  run<R = unknown>(type: string, payload: unknown, opts: RunOptions = {}): Promise<R> {
    const { signal, onProgress, ...createOpts } = opts;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<R>((resolve, reject) => {
      let settled = false;
      let jobId: string | undefined;
      let unsubscribe = () => {};
      const finish = (ok: boolean, v: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        unsubscribe();
        if (ok) resolve(v as R);
        else reject(v);
      };
      const onAbort = () => {
        finish(false, abortError(signal!));
        if (jobId !== undefined) this.cancelQuietly(jobId);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // The create is not tied to the signal: if it is aborted meanwhile we still learn the id and cancel.
      this.create(type, payload, { ...createOpts, follow: true }).then(
        ({ id, channel }) => {
          jobId = id;
          if (settled) {
            if (signal?.aborted) this.cancelQuietly(id);
            return;
          }
          let sub: Subscription;
          try {
            sub = this.c.subscribe(channel, { after: '0' });
          } catch (err) {
            finish(false, err); // the client was closed meanwhile
            this.cancelQuietly(id);
            return;
          }
          unsubscribe = () => sub.unsubscribe();
          sub.on('error', (err) => finish(false, err));
          sub.on('message', (m: Message) => {
            const ev = m.data as { event?: string; attempt?: number; data?: unknown; result?: unknown; error?: string; reason?: string };
            switch (ev?.event) {
              case 'progress':
                onProgress?.(ev.data, { attempt: ev.attempt ?? 0 });
                return;
              case 'succeeded':
                finish(true, ev.result);
                return;
              case 'failed':
                finish(false, new TetherError('job_failed', `job ${id} failed: ${ev.error ?? ''}`, { details: ev as Record<string, unknown> }));
                return;
              case 'canceled':
                finish(false, new TetherError('job_canceled', `job ${id} was canceled (${ev.reason ?? ''})`, { details: ev as Record<string, unknown> }));
                return;
            }
          });
        },
        (err) => finish(false, err),
      );
    });
  }

  /** cancelQuietly cancels in the background, retrying network failures a few times. */
  private cancelQuietly(id: string): void {
    (async () => {
      for (let n = 0; n < 5; n++) {
        try {
          await this.cancel(id);
          return;
        } catch (err) {
          if (err instanceof TetherError && !['network', 'timeout', 'unavailable', 'internal'].includes(err.code)) return;
          await delay(backoffDelay(n, 200, 3000, 50));
        }
      }
    })().catch(() => {});
  }
}
