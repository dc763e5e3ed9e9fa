/**
 * The pending-event buffer: messages (and the gaps between them) that arrived
 * for a subscription with no `message` handler yet. socket.io drops such
 * events silently; here they are held, bounded, and replayed in order the
 * moment a handler registers. What does not fit, or waits too long, is
 * reported through the client's `dropped` event with counts and cursors.
 */

/** PendingLimits bounds the buffer; all three apply at once, across all subscriptions of a client. */
export interface PendingLimits {
  /** Most held events. Default 1000. */
  maxCount: number;
  /** Most held bytes (the size of each message's JSON). Default 1 MiB. */
  maxBytes: number;
  /** Longest an event is held, in ms. Default 30 000. */
  ttlMs: number;
}

export const defaultPendingLimits: PendingLimits = { maxCount: 1000, maxBytes: 1 << 20, ttlMs: 30_000 };

/** DroppedReport is the payload of the client's `dropped` event. */
export interface DroppedReport {
  channel: string;
  /** `overflow`: did not fit (count or bytes), the newest are refused; `expired`: held longer than ttlMs; `unsubscribed`: held when the app unsubscribed. */
  reason: 'overflow' | 'expired' | 'unsubscribed';
  /** Messages dropped (gaps are not counted, but are included in `gaps`). */
  count: number;
  bytes: number;
  /** Gap notices dropped with them. */
  gaps: number;
  /** Cursor of the first and last message dropped: read them again with `after` = the cursor before. */
  firstCursor?: string;
  lastCursor?: string;
}

export interface PendingEntry {
  owner: object;
  channel: string;
  kind: 'message' | 'gap';
  value: any;
  cursor?: string;
  bytes: number;
  at: number;
  live: boolean;
}

export class PendingBuffer {
  private queues = new Map<object, PendingEntry[]>();
  private fifo: PendingEntry[] = [];
  private count = 0;
  private bytes = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private reports = new Map<string, DroppedReport>();

  constructor(
    private readonly limits: PendingLimits,
    private readonly report: (r: DroppedReport) => void,
  ) {}

  /** size is what the buffer holds now. */
  get size(): { count: number; bytes: number } {
    return { count: this.count, bytes: this.bytes };
  }

  /** heldFor is how many events wait for owner. */
  heldFor(owner: object): number {
    return this.queues.get(owner)?.length ?? 0;
  }

  /** add holds an entry; it returns false (and reports the drop) when the entry does not fit. */
  add(e: Omit<PendingEntry, 'at' | 'live'>): boolean {
    const entry: PendingEntry = { ...e, at: Date.now(), live: true };
    if (this.count + 1 > this.limits.maxCount || this.bytes + entry.bytes > this.limits.maxBytes) {
      this.noteDrop(entry, 'overflow');
      return false;
    }
    let q = this.queues.get(entry.owner);
    if (!q) this.queues.set(entry.owner, (q = []));
    q.push(entry);
    this.fifo.push(entry);
    this.count++;
    this.bytes += entry.bytes;
    if (this.fifo.length > 2 * this.limits.maxCount + 16) this.fifo = this.fifo.filter((x) => x.live);
    this.schedule();
    return true;
  }

  /** drain hands owner's entries to deliver, in order, while canTake allows. */
  drain(owner: object, canTake: (e: PendingEntry) => boolean, deliver: (e: PendingEntry) => void): void {
    const q = this.queues.get(owner);
    while (q && q.length > 0 && canTake(q[0]!)) {
      const e = q.shift()!;
      this.unhold(e);
      deliver(e);
    }
    if (q && q.length === 0) this.queues.delete(owner);
  }

  /** discard drops all of owner's entries with the given reason. */
  discard(owner: object, reason: DroppedReport['reason']): void {
    const q = this.queues.get(owner);
    if (!q) return;
    this.queues.delete(owner);
    for (const e of q) {
      this.unhold(e);
      this.noteDrop(e, reason);
    }
  }

  /** clear forgets everything without reports (the client is closing). */
  clear(): void {
    this.queues.clear();
    this.fifo = [];
    this.count = this.bytes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private unhold(e: PendingEntry): void {
    e.live = false;
    this.count--;
    this.bytes -= e.bytes;
  }

  private schedule(): void {
    if (this.timer) return;
    while (this.fifo.length > 0 && !this.fifo[0]!.live) this.fifo.shift();
    const head = this.fifo[0];
    if (!head) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sweep();
    }, Math.max(0, head.at + this.limits.ttlMs - Date.now()));
  }

  private sweep(): void {
    const now = Date.now();
    while (this.fifo.length > 0) {
      const e = this.fifo[0]!;
      if (e.live && e.at + this.limits.ttlMs > now) break;
      this.fifo.shift();
      if (!e.live) continue;
      const q = this.queues.get(e.owner);
      if (q) {
        const i = q.indexOf(e);
        if (i >= 0) q.splice(i, 1);
        if (q.length === 0) this.queues.delete(e.owner);
      }
      this.unhold(e);
      this.noteDrop(e, 'expired');
    }
    this.schedule();
  }

  /** noteDrop adds to this tick's report for (channel, reason); reports go out once per tick. */
  private noteDrop(e: PendingEntry, reason: DroppedReport['reason']): void {
    const k = reason + '\u0000' + e.channel;
    let r = this.reports.get(k);
    if (!r) {
      if (this.reports.size === 0) queueMicrotask(() => this.flushReports());
      r = { channel: e.channel, reason, count: 0, bytes: 0, gaps: 0 };
      this.reports.set(k, r);
    }
    if (e.kind === 'gap') {
      r.gaps++;
      return;
    }
    r.count++;
    r.bytes += e.bytes;
    if (r.firstCursor === undefined) r.firstCursor = e.cursor;
    r.lastCursor = e.cursor;
  }

  private flushReports(): void {
    const rs = [...this.reports.values()];
    this.reports.clear();
    for (const r of rs) this.report(r);
  }
}
