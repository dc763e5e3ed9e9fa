import { TetherError } from './errors.js';
import { FrameSocket, tokenProtocols, type Frame, type WebSocketCtor } from './frames.js';
import type { PublishAck, Transport, TransportSink } from './transport.js';

/** WSTransport speaks the framed protocol (docs/protocol.md) over one WebSocket. */
export class WSTransport implements Transport {
  readonly name = 'websocket' as const;
  private fs: FrameSocket;

  constructor(url: string, ctor: WebSocketCtor, heartbeatTimeout: number, connectTimeout: number, private readonly sink: TransportSink, token?: string) {
    this.fs = new FrameSocket(url, ctor, { heartbeatTimeout, connectTimeout, ...(token ? { protocols: tokenProtocols(token) } : {}) }, {
      opened: () => sink.opened(),
      end: (info) => sink.end(info),
      frame: (f, size) => this.onFrame(f, size),
    });
  }

  start(): void {
    this.fs.start();
  }

  private onFrame(f: Frame, _size: number): void {
    switch (f.type) {
      case 'message':
        this.sink.message(String(f.channel), String(f.cursor), f.data, typeof f.time === 'string' ? f.time : undefined, 0);
        return;
      case 'gap':
        this.sink.gap(String(f.channel), String(f.after), String(f.earliest));
        return;
      case 'error':
        if (typeof f.channel === 'string') this.sink.subError(f.channel, new TetherError(String(f.code), String(f.message ?? f.code), { details: f }));
        return;
    }
  }

  async subscribe(channel: string, after: string | undefined): Promise<string> {
    const f: Omit<Frame, 'id'> = { type: 'subscribe', channel };
    if (after !== undefined) f.after = after;
    const r = await this.fs.request(f);
    return String(r.cursor);
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.fs.request({ type: 'unsubscribe', channel });
  }

  async publish(channel: string, data: unknown, idempotencyKey: string): Promise<PublishAck> {
    const r = await this.fs.request({ type: 'publish', channel, data, idempotency_key: idempotencyKey });
    return { cursor: String(r.cursor), duplicate: r.duplicate === true };
  }

  /** refresh sends a fresh token for this connection (docs/protocol.md, "Expiry and refresh"). */
  async refresh(token: string): Promise<void> {
    await this.fs.request({ type: 'refresh', token });
  }

  close(): void {
    this.fs.close();
  }
}
