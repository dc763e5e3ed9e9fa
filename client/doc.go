// Package client is the Go client of tether: a connection to a tether
// server that stays up, with the client half of every guarantee the server
// makes (docs/protocol.md, docs/api.md).
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Config{})
//	if err != nil { ... }
//	defer c.Close()
//
//	// Resume after the cursor the application persisted ("0": from the
//	// oldest retained message).
//	sub, err := c.Subscribe(ctx, "news", client.SubscribeOptions{After: saved})
//	c.Handle("news", func(ev client.Event) {
//		switch ev.Kind {
//		case client.EventMessage:
//			apply(ev.Data)
//			save(ev.Cursor)
//		case client.EventGap, client.EventDropped:
//			resync()
//		}
//	})
//
//	res, err := c.Publish(ctx, "news", map[string]string{"title": "hi"}) // res.Cursor once durable
//
//	result, err := c.Jobs().Run(ctx, "resize", payload, client.JobOptions{
//		OnProgress: func(p json.RawMessage) { ... },
//	}) // cancelling ctx cancels the job on the server
//
// What the client guarantees:
//
//   - Connection: WebSocket (ws://, wss://) or TCP (tcp://), reconnecting
//     with exponential backoff and full jitter (Config.BackoffMin,
//     BackoffMax), or after the server's shutdown hint. It answers the
//     server's pings and takes a server that sent nothing for
//     Config.HeartbeatTimeout (10s) for dead. Every transition is reported
//     with its reason (Config.OnState). When the WebSocket upgrade is
//     refused (a proxy), it falls back to SSE streams and HTTP publishing,
//     and to long-polling when SSE is blocked too (Config.NoFallback turns
//     that off). A fixed Config.Token that the server refuses for good
//     (unauthorized, token_expired) ends the client instead (StateClosed,
//     calls return the refusal): a reconnect with it would be refused
//     again. A Config.TokenSource reconnects with a fresh token.
//   - Subscriptions resume after every reconnect after the last cursor
//     received; a message received twice (by cursor) is delivered once;
//     messages the server lost to retention are reported (EventGap), never
//     skipped silently. Subscription.Cursor is the cursor to persist.
//   - Events that arrive for a subscribed channel with no handler yet are
//     held in the unhandled-event buffer, bounded by count, bytes and age
//     (1000 events, 4 MiB, 30s by default), and handed to the handler, in
//     order, when Handle registers it. What the buffer drops is reported
//     (Config.OnDropped, an EventDropped ahead of what remains, Stats).
//   - Publish returns once the message is durable, with its cursor. Each
//     call has an idempotency key, so retries across reconnects append it
//     once. While offline, publishes wait in a bounded queue and go out in
//     order per channel on the next connection.
//   - Jobs().Run creates a job, follows its progress and returns its
//     result; cancelling its ctx cancels the job on the server.
//
// Concurrency: every method of Client, Subscription and Jobs may be called
// from any goroutine. Handlers and the OnState, OnDropped, OnProgress and
// OnEvent callbacks are called one at a time, in order, on the client's
// one delivery goroutine: a slow handler holds up the others (and, once
// Config.DeliveryQueue events wait, reading from the server). A handler
// may call Publish, Subscribe, Close and the like.
//
// Goroutines, all owned by the Client and ended by Close: one keeping the
// connection up, the delivery goroutine, those of the live connection (a
// reader and a heartbeat watchdog; for the SSE fallback, one per stream),
// and short-lived ones resubscribing or sending queued publishes after a
// reconnect.
//
// Conn is the building block underneath: one framed connection without
// reconnects, which the worker package uses too.
package client
