import { abortError, TetherError } from './errors.js';

/** randomId returns 22 random URL-safe characters (132 bits). */
export function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  const b = new Uint8Array(22);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let s = '';
  for (let i = 0; i < b.length; i++) s += abc[b[i]! & 63];
  return s;
}

/** delay resolves after ms, or rejects when signal fires. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * linkSignals returns a signal that fires when any of the given ones fires,
 * and a function that detaches it (AbortSignal.any is not in every runtime we
 * support, and it would keep the listeners attached until collection).
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; unlink: () => void; controller: AbortController } {
  const controller = new AbortController();
  const offs: (() => void)[] = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    const f = () => controller.abort(s.reason);
    s.addEventListener('abort', f, { once: true });
    offs.push(() => s.removeEventListener('abort', f));
  }
  return { signal: controller.signal, controller, unlink: () => offs.forEach((f) => f()) };
}

/**
 * backoffDelay is exponential backoff with full jitter: a uniformly random
 * delay in [0, min(max, base * 2^attempt)). Full jitter spreads a crowd of
 * clients that lost the same server over the whole window, instead of
 * bringing them back in waves (AWS Architecture Blog, "Exponential Backoff
 * and Jitter", 2015). A floor of min keeps a flapping connection from
 * spinning.
 */
export function backoffDelay(attempt: number, base: number, max: number, min = 0): number {
  const cap = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.max(min, Math.floor(Math.random() * cap));
}

/** byteLength estimates the UTF-8 size of a string cheaply (exact for ASCII). */
export function byteLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) n += c > 0x7ff ? 2 : 1;
  }
  return n;
}

/** TokenSource is the `getToken` option: a token, or nothing, per connection or request. */
export type TokenSource = () => string | undefined | null | Promise<string | undefined | null>;

/** httpBase normalizes a base URL (no trailing slash). */
export function httpBase(url: string): string {
  return url.replace(/\/+$/, '');
}

/** wsURL derives the WebSocket URL of /v1/ws from the HTTP base URL. */
export function wsURL(base: string): string {
  return base.replace(/^http/, 'ws') + '/v1/ws';
}

/** addQuery appends one query parameter. */
export function addQuery(url: string, key: string, value: string): string {
  return url + (url.includes('?') ? '&' : '?') + encodeURIComponent(key) + '=' + encodeURIComponent(value);
}

/** networkError wraps a failed fetch or socket. */
export function networkError(what: string, cause: unknown): TetherError {
  return new TetherError('network', `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
}

/** onceEvent waits for a one-shot callback registration to fire, honouring signal. */
export function waitFor<T>(register: (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    let off = () => {};
    const onAbort = () => {
      off();
      reject(abortError(signal!));
    };
    off = register(
      (v) => {
        signal?.removeEventListener('abort', onAbort);
        off();
        resolve(v);
      },
      (e) => {
        signal?.removeEventListener('abort', onAbort);
        off();
        reject(e);
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * tokenExpiry returns the `exp` of a JWT (in ms since the epoch), read from
 * its payload without verifying anything (the server does that), or
 * undefined when the token is not a JWT or has no numeric `exp`.
 */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const exp = JSON.parse(new TextDecoder().decode(bytes))?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * refreshDelay is when to refresh a token that expires at exp (ms since the
 * epoch): at 80% of its remaining life, and at least a second before exp;
 * never sooner than 250 ms (a getToken that keeps returning the same token
 * must not make the client spin), never later than setTimeout allows.
 */
export function refreshDelay(exp: number, now = Date.now()): number {
  const left = exp - now;
  return Math.min(Math.max(Math.min(left * 0.8, left - 1000), 250), 2 ** 31 - 1);
}
