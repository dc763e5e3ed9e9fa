// Package session is tether's one session core: it serves every
// connection of every transport (long-poll, Server-Sent Events, WebSocket,
// plain TCP) with the same subscriptions by cursor, the same shared reads,
// the same outgoing queue and lag policy, the same heartbeats, the same
// stall guard, one end decision, and one registry.Peer. The transports are
// framers: each turns the core's events (wire.Message, wire.Gap,
// wire.Reply, wire.ErrorFrame, wire.Ping, wire.Shutdown) into its bytes
// through a Format, and reads client frames where it has any.
//
//	core, err := session.New(session.Config{}, st, reg, logger, session.Access{Verifier: v, Limits: lim}, workerproto.New(jobsSvc))
//	...
//	wsh, _ := ws.New(ws.Config{}, core)           // framed: Core.Start
//	tcps, _ := tcp.New(tcp.Config{Addr: a}, core) // framed: Core.Start
//	api, _ := httpapi.New(httpapi.Config{}, core, jobsSvc, promReg) // SSE: Core.OpenStream + Session.StreamStart; long-poll: Core.OpenPoll + Session.PollNow
//
// # Transports
//
// A framed transport (WebSocket, TCP) implements FramedTransport (and
// BufferedReader, so that it is read only on readiness) and calls
// Core.Start, which admits the connection in the registry.Registry,
// serves the request/reply protocol of docs/protocol.md without keeping
// the caller's goroutine, and calls done when the connection has wound up
// (Core.Serve is Start, then wait). A write-only transport (SSE)
// implements Transport, opens its session with Core.OpenStream and runs
// Session.StreamStart (or Session.Stream, its blocking form, over
// HTTP/2); over HTTP/1.1 httpapi hijacks the connection and tells the
// session of its client's departure itself, else it is conn.Watch's (the
// request's context); Session.Finish records the end. A long-poll opens
// with Core.OpenPoll, answers at once (Session.PollNow) or parks its wait
// (PollWait.Park, no goroutine) or waits on its handler (PollWait.Wait). Extensions add request types to the framed protocol (the jobs'
// worker frames, package jobs/workerproto) without the core importing
// them; a Follower is told of every subscription on every transport.
//
// # Access
//
// Every permission decision of the node is made here, in one place that
// every transport calls: Core.Authenticate turns a token (HTTP: Bearer or
// ?token=; TCP: hello) into an auth.Principal, which lives on the
// Session (Session.Principal), and Core.Authorize decides each act
// (subscribe, publish, job create, read, cancel, work, admin) for it. The
// core itself checks subscribe (framed, SSE, long-poll) and publish
// (framed), and admits each connection against the Limits (Access)
// before the Registry opens it; HTTP routes and the worker extension call
// Authorize for the rest. A token's expiry ends a WebSocket, TCP or SSE
// connection (ReasonTokenExpired) unless a refresh frame replaced it; a
// long-poll's wait ends by it. Presence (who is subscribed where, join
// and leave events) follows subscriptions (presence.go).
//
// # Shared reads
//
// An append to a channel with S subscribers wakes all S at the same
// cursor: they share one store read (sharedReads) and, per Format, one
// encoding of its messages, whatever their transport. Nothing is dropped:
// the queue is bounded in bytes (Config.QueueBytes per lane); at the bound
// a subscription waits and so stops reading its channel, the log is the
// buffer. Once its oldest undelivered message is older than Config.MaxLag
// the connection ends with slow-consumer: a framed client gets an error
// frame naming, per channel, the last cursor written; an SSE client, which
// resumes with Last-Event-ID, is reset. While written data may wait in the
// socket, the timer goroutine runs conn.StallGuard so that neither the
// kernel's TCP_USER_TIMEOUT nor the heartbeat ends a client that is alive
// but not reading before MaxLag does.
//
// # Ends and shutdown
//
// Every end is one decision, the first wins: the peer left (a read or
// write failed, or conn.Watch saw the HTTP client go), the client said
// bye, a limit fired (heartbeat, idle, lag, frame size), or the Registry
// closed the session (an operator's close, Registry.Shutdown). A
// protocol error (a frame too large, not UTF-8, not JSON) aborts: the
// error frame is flushed within 250ms, nothing more is read, and the
// transport says goodbye its way and resets (Aborter). An operator's close
// or a reset that comes after the end was decided resets the socket at
// once, so an end stuck on its peer (a graceful close waiting on a client
// that stopped mid-frame) never holds the connection. The
// Registry's Shutdown is the only shutdown path: NotifyShutdown queues the
// shutdown frame for a framed client (which answers bye), and sends a
// stream its shutdown event as its last and ends it.
//
// # Concurrency
//
// A Core is safe for concurrent use. A framed connection (Core.Start, or
// Core.Serve, which is Start and then a wait for its done) has goroutines
// only while it has work:
//
//   - a reader while there is something to read. A transport that
//     implements BufferedReader is watched with conn.Ready: the reader
//     reads and dispatches frames while the transport holds bytes
//     (Buffered), then arms the Ready and exits; the Ready's callback
//     starts the next reader once the socket is readable (bytes, FIN, a
//     reset). A frame that is only partly in keeps its reader until the
//     rest comes. A transport without Buffered, or whose socket conn.Ready
//     cannot watch, keeps one reader goroutine for the connection's life;
//   - a writer while something is queued: the push that finds no writer
//     running starts one, which writes everything queued (one write per
//     wake-up) and exits once the queue is empty;
//   - one goroutine per request in flight (at most Config.MaxInFlight),
//     and one per subscription that is behind, reading its channel from
//     the store and queueing. A caught-up subscription has no goroutine:
//     it is parked (park.go), and the subscriptions of a channel parked
//     at one cursor share one goroutine waiting on the store, owned by the
//     Core, which exits once it woke them or they all left. A
//     subscription has a context only while a goroutine runs it; the
//     session's end reaches every subscription through Session.endSubs
//     (called by the end's decision), not through context propagation,
//     so a parked one holds no context and no watch.
//
// Start's caller keeps no goroutine: Start returns once the session runs,
// and done is called once it has wound up. An SSE stream has the
// handler's goroutine (Stream), the on-demand writer, and its
// subscription's while it is behind; a long-poll only the handler's.
// Pings, heartbeats and the idle, heartbeat and lag limits run on a
// runtime timer (time.AfterFunc), so an idle connection has no goroutine
// for them. Once the end is decided a short-lived goroutine winds the
// session up (stops requests and subscriptions, tells extensions, flushes
// or resets); for a framed session it then waits for the writer to drain
// and the reader to stop (the Ready stopped first, so no reader starts
// after), records the end and calls done. The Session implements
// registry.Peer, whose methods are safe to call from any goroutine at any
// time; they never block on the network.
//
// Locks: Core.presence.mu guards who is subscribed where (a leaf: events
// are queued after it is released); Core.parking.mu guards the parked
// subscriptions (a leaf but for the Gauge it counts them in and a
// subscription's own mu); sub.mu (a leaf) a subscription's run and end;
// Session.mu guards the subscriptions, Session.workMu the request work
// group, Session.endMu the decided end and the wind-up's latch,
// Session.tmu the timer's state and the stall guard, Session.dueMu (a
// leaf) when the timer fires next; the queue has its own (it starts the
// writer with it held: a go statement, nothing that blocks); the reader's
// (framed.go) is held across conn.Ready's Arm, whose own lock is a leaf.
// Order: tmu before endMu, mu, parking.mu and the queue's lock (a timer
// firing reads the queue and the subscriptions, and may decide the end,
// which ends the subscriptions); parking.mu before sub.mu; the queue's
// lock before dueMu (a push that starts a lag clock wakes the timer); no
// other lock is held while taking another. Signals that fire once at a
// connection's end, with usually nobody waiting (the wind-up's, the
// writer's last word, the reader's stop), are latches (internal/latch) under
// their owner's lock: their channel is made only for a waiter.
package session
