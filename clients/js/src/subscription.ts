import { Emitter } from './emitter.js';
import { abortError, TetherError } from './errors.js';
import type { PendingBuffer, PendingEntry } from './pending.js';
import { byteLength, waitFor } from './util.js';

/** A message of a channel. */
export interface Message<T = unknown> {
  channel: string;
  /** Opaque cursor: store it, hand it back as `after`; never parse or compare it. */
  cursor: string;
  data: T;
  /** When the server accepted it (RFC 3339). Not carried by SSE. */
  time?: string;
}

/** GapInfo: retention removed messages after `after` that this subscription had not received; what remains follows from `earliest`. */
export interface GapInfo {
  channel: string;
  after: string;
  earliest: string;
}

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface SubscriptionStateChange {
  state: SubscriptionState;
  previous: SubscriptionState;
  /** `subscribe`, `subscribed`, `unsubscribe`, a connection end reason (e.g. `heartbeat-timeout`), or a server error code. */
  reason: string;
  error?: TetherError;
}

export type SubscriptionEvents = {
  message: [Message];
  gap: [GapInfo];
  state: [SubscriptionStateChange];
  error: [TetherError];
};

/** The client's side of a subscription (what Subscription needs from it). */
export interface SubscriptionHost {
  pending: PendingBuffer;
  removeSubscription(s: Subscription): void;
  unhandledGap(g: GapInfo): boolean;
}

const seenBound = 1024;

/**
 * Subscription is one channel read by cursor. It resumes after the last
 * cursor received on every reconnect, drops a message whose cursor it has
 * already seen, and reports trimmed history with `gap`. Messages that arrive
 * while it has no `message` listener are held in the client's pending buffer
 * and replayed, in order, when one is added.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  private st: SubscriptionState = 'subscribing';
  private handled: string | undefined;
  /** The last cursor received from the server: where a resubscribe resumes. */
  resumeAfter: string | undefined;
  private lastError: TetherError | undefined;
  private seen = new Set<string>();
  private seenOrder: string[] = [];
  /** Messages dropped as duplicates (same cursor twice). */
  duplicates = 0;

  constructor(
    readonly channel: string,
    after: string | undefined,
    private readonly host: SubscriptionHost,
  ) {
    super();
    this.resumeAfter = after;
    this.handled = after;
  }

  get state(): SubscriptionState {
    return this.st;
  }

  /**
   * cursor is the cursor of the last message handed to a `message` listener
   * (or where the subscription started). Persist it and pass it as `after`
   * after a reload: held messages that were never handled are read again.
   */
  get cursor(): string | undefined {
    return this.handled;
  }

  /** held is how many events wait in the pending buffer for a handler. */
  get held(): number {
    return this.host.pending.heldFor(this);
  }

  /** ready resolves once subscribed (now, or after the next (re)connect); rejects if the subscription ends first. */
  ready(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.st === 'subscribed') return Promise.resolve();
    if (this.st === 'unsubscribed') return Promise.reject(this.lastError ?? new TetherError('closed', 'unsubscribed'));
    if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
    return waitFor<void>((resolve, reject) => this.on('state', (c) => {
      if (c.state === 'subscribed') resolve();
      else if (c.state === 'unsubscribed') reject(c.error ?? new TetherError('closed', 'unsubscribed'));
    }), opts.signal);
  }

  /** unsubscribe ends the subscription; held events are reported as dropped (`unsubscribed`). */
  unsubscribe(): void {
    if (this.st === 'unsubscribed') return;
    this.host.removeSubscription(this);
    this.host.pending.discard(this, 'unsubscribed');
    this.setState('unsubscribed', 'unsubscribe');
  }

  // ---- called by the client ----

  /** @internal */
  setState(state: SubscriptionState, reason: string, error?: TetherError): void {
    if (state === this.st) return;
    const previous = this.st;
    this.st = state;
    this.emit('state', { state, previous, reason, ...(error ? { error } : {}) });
  }

  /** @internal The subscribe was answered: it starts after `cursor`. */
  started(cursor: string): void {
    if (this.resumeAfter === undefined) this.resumeAfter = cursor;
    if (this.handled === undefined) this.handled = cursor;
    this.setState('subscribed', 'subscribed');
  }

  /** @internal */
  failed(err: TetherError): void {
    this.lastError = err;
    this.host.removeSubscription(this);
    this.setState('unsubscribed', err.code, err);
    if (!this.emit('error', err)) {
      setTimeout(() => {
        throw err;
      }, 0);
    }
  }

  /** @internal */
  receive(cursor: string, data: unknown, time: string | undefined, size: number): void {
    if (this.seen.has(cursor)) {
      this.duplicates++;
      return;
    }
    this.seen.add(cursor);
    this.seenOrder.push(cursor);
    if (this.seenOrder.length > seenBound) this.seen.delete(this.seenOrder.shift()!);
    this.resumeAfter = cursor;
    const m: Message = { channel: this.channel, cursor, data };
    if (time !== undefined) m.time = time;
    if (this.held === 0 && this.listenerCount('message') > 0) {
      this.deliver(m);
      return;
    }
    const bytes = size > 0 ? size : byteLength(JSON.stringify(data) ?? '');
    this.host.pending.add({ owner: this, channel: this.channel, kind: 'message', value: m, cursor, bytes });
    this.replay();
  }

  /** @internal */
  gap(g: GapInfo): void {
    if (this.held === 0) {
      this.deliverGap(g);
      return;
    }
    this.host.pending.add({ owner: this, channel: this.channel, kind: 'gap', value: g, bytes: 64 });
  }

  protected added(ev: keyof SubscriptionEvents): void {
    if (ev === 'message' && this.held > 0) queueMicrotask(() => this.replay());
  }

  private replay(): void {
    this.host.pending.drain(this, () => this.listenerCount('message') > 0 && this.st !== 'unsubscribed', (e: PendingEntry) => {
      if (e.kind === 'gap') this.deliverGap(e.value);
      else this.deliver(e.value);
    });
  }

  private deliver(m: Message): void {
    this.handled = m.cursor;
    this.emit('message', m);
  }

  private deliverGap(g: GapInfo): void {
    if (this.emit('gap', g)) return;
    if (this.host.unhandledGap(g)) return;
    // Never silent: with no gap listener anywhere, say so on the console.
    (globalThis as { console?: Console }).console?.warn(`tether: gap on ${g.channel}: messages after ${g.after} were trimmed; resuming at ${g.earliest}`);
  }
}
