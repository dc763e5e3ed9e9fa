import type { TetherError } from './errors.js';

/** The three transports, in the order the client tries them. */
export type TransportName = 'websocket' | 'sse' | 'longpoll';

/**
 * Why a connection ended (or an attempt failed). These are the `reason` of the
 * client's state transitions; see README "Events".
 */
export type EndReason =
  | 'shutdown' // the server is stopping and sent its reconnect hint
  | 'heartbeat-timeout' // the server sent nothing for heartbeatTimeout
  | 'connect-timeout' // the connection did not open within connectTimeout
  | 'transport-closed' // the socket or stream ended without a word from the server
  | 'transport-error' // the connection could not be made, or a request failed on the network
  | 'transport-blocked' // the server is reachable but this transport was refused (e.g. a proxy refusing WebSocket upgrades)
  | 'token-refresh' // a WebSocket token refresh was refused, or getToken failed for it: reconnecting with a fresh token
  | 'server-error'; // the server ended the connection with an error frame (code: slow_consumer, kicked, unavailable, bad_frame, ...)

/** EndInfo describes the end of one transport connection. */
export interface EndInfo {
  reason: EndReason;
  /** The server's error code, for `server-error`. */
  code?: string;
  message: string;
  /** The server's hint, for `shutdown` (also sent by long-poll keepalives while the server stops). */
  reconnectAfterMs?: number;
  /** The WebSocket close code, when there was one. */
  closeCode?: number;
  /** Whether the transport had opened before it ended. */
  opened: boolean;
}

/** TransportSink receives what a transport reads. */
export interface TransportSink {
  opened(): void;
  message(channel: string, cursor: string, data: unknown, time: string | undefined, size: number): void;
  gap(channel: string, after: string, earliest: string): void;
  /** A subscription failed on the server side; it is gone. */
  subError(channel: string, err: TetherError): void;
  /** The transport ended; called at most once, never after close(). */
  end(info: EndInfo): void;
}

export interface PublishAck {
  cursor: string;
  duplicate: boolean;
}

/**
 * Transport is one connection to the server over one of the three transports.
 * The client makes a new one for every (re)connect attempt.
 */
export interface Transport {
  readonly name: TransportName;
  start(): void;
  /** subscribe resolves with the cursor the subscription starts after. */
  subscribe(channel: string, after: string | undefined): Promise<string>;
  unsubscribe(channel: string): Promise<void>;
  publish(channel: string, data: unknown, idempotencyKey: string): Promise<PublishAck>;
  /** close ends the transport without calling sink.end. */
  close(): void;
}
