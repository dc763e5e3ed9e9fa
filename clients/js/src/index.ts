/**
 * @tether-run/client: the TypeScript client of tether.
 *
 *     const client = new Client({ url: 'http://127.0.0.1:8080' });
 *     const news = client.subscribe('news', { after: savedCursor ?? '0' });
 *     news.on('message', (m) => { show(m.data); save(m.cursor); });
 *     const { cursor } = await client.publish('news', { title: 'hi' });
 *     const result = await client.jobs.run('resize', { src }, { signal, onProgress });
 *
 * Concurrency contract: everything runs on the caller's event loop (no
 * threads, no locks). Listeners are called synchronously, in registration
 * order, from the socket's or stream's event, so a slow listener delays the
 * messages behind it but loses none. A Client owns its timers and sockets
 * until close(); a Worker until stop(). The job worker is a separate entry
 * point, `@tether-run/client/worker`.
 */
export { Client, defaults } from './client.js';
export type { ClientOptions, ClientEvents, ConnectionState, StateChange, StateReason, PublishOptions } from './client.js';
export { Subscription } from './subscription.js';
export type { Message, GapInfo, SubscriptionState, SubscriptionStateChange, SubscriptionEvents } from './subscription.js';
export { TetherError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { Jobs } from './jobs.js';
export type { JobInfo, CreateOptions, RunOptions } from './jobs.js';
export type { DroppedReport, PendingLimits } from './pending.js';
export { defaultPendingLimits } from './pending.js';
export type { TransportName, EndReason, PublishAck } from './transport.js';
export type { WebSocketCtor, WebSocketLike } from './frames.js';
export type { TokenSource } from './util.js';
