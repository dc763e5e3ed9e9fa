/**
 * Emitter is a small typed event emitter. Listeners run synchronously in the
 * order they were added; a listener that throws does not stop the others (the
 * exception is rethrown asynchronously so that it still reaches the console or
 * `process.on('uncaughtException')`).
 */
export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private ls: { [K in keyof E]?: Listener<E[K]>[] } = {};

  /** on adds a listener and returns a function that removes it. */
  on<K extends keyof E>(ev: K, fn: Listener<E[K]>): () => void {
    (this.ls[ev] ??= []).push(fn);
    this.added(ev);
    return () => this.off(ev, fn);
  }

  /** once adds a listener that runs at most once. */
  once<K extends keyof E>(ev: K, fn: Listener<E[K]>): () => void {
    const off = this.on(ev, ((...a: E[K]) => {
      off();
      fn(...a);
    }) as Listener<E[K]>);
    return off;
  }

  off<K extends keyof E>(ev: K, fn: Listener<E[K]>): void {
    const l = this.ls[ev];
    if (!l) return;
    const i = l.indexOf(fn);
    if (i >= 0) l.splice(i, 1);
  }

  /** listenerCount is how many listeners `ev` has. */
  listenerCount<K extends keyof E>(ev: K): number {
    return this.ls[ev]?.length ?? 0;
  }

  /** emit calls every listener of `ev`; it returns false when there was none. */
  protected emit<K extends keyof E>(ev: K, ...args: E[K]): boolean {
    const l = this.ls[ev];
    if (!l || l.length === 0) return false;
    for (const fn of l.slice()) {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
    return true;
  }

  /** added is a hook for subclasses: a listener for `ev` was just added. */
  protected added(_ev: keyof E): void {}
}
