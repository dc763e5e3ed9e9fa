// Package natsstore is tether's distributed storage engine: a [store.Store]
// kept in a NATS JetStream stream, so that several tether nodes serve the
// same channels.
//
//	s, err := natsstore.Open(ctx, natsstore.Config{
//		URLs:      "nats://n1:4222,nats://n2:4222,nats://n3:4222",
//		Retention: store.Retention{MaxAge: 24 * time.Hour},
//		Logger:    logger,
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	res, err := s.Append(ctx, "orders", payload, store.AppendOptions{IdempotencyKey: id})
//
// # Layout
//
// One stream (Config.Stream, "TETHER") holds every channel, one subject per
// channel: "<Stream>.c.<channel>" with '.' written as '~'. A cursor is the
// message's stream sequence in decimal; store.Start ("0") is before every
// message. Each message carries headers: Tether-Prev (the stream sequence
// of the channel's previous message, 0 for its first), Tether-Time (when
// the appending node accepted it) and Tether-Nonce (which append wrote it).
//
// # Writes
//
// An append publishes with Nats-Expected-Last-Subject-Sequence set to the
// predecessor it names, so the chain of Tether-Prev headers is exactly the
// channel's order, whichever node appended. An append that loses the race
// to another node learns the new predecessor from the refusal and tries
// again; a conditional append (ExpectLatest) names the expected cursor and
// fails with store.ErrConflict instead. A Store's appends to one channel
// queue behind the channel's sender goroutine, which sends all that wait
// as one JetStream atomic batch, stored whole at consecutive sequences:
// the batch's later messages carry Tether-Prev "=" (the sequence just
// before their own). The acknowledgement comes once the message is stored
// at the stream's replicas. Requests lost to a failover, and refusals
// while the stream has no leader, are retried within the caller's
// deadline.
//
// # Reads and Waits
//
// Each Store runs one ordered consumer on the stream (the watch); it
// delivers every message, whoever appended it, wakes Waits, and feeds the
// in-memory tail of each channel in use on this Store (its newest
// messages, bounded). A Read after a cursor the tail holds is answered from
// memory; otherwise Read and Bounds ask the stream leader for the channel's
// newest message (its Latest) and read pages with batched direct gets from
// any replica, falling back to the leader when a replica lags. A Wait
// registers before it asks the leader for Latest, so no wakeup is lost
// between the two.
//
// # Retention
//
// MaxMessages is the stream's MaxMsgsPerSubject. MaxAge is the store's:
// reads hide expired messages, and a trimmer deletes them, except each
// channel's newest message, which holds the channel's Latest and is the
// predecessor the next append must name.
//
// # Concurrency
//
// All methods of Store are safe for concurrent use. Open starts the watch
// (the ordered consumer's goroutines, owned by nats.go) and, with a MaxAge,
// the trimmer goroutine; Append starts a channel's sender, which exits when
// the channel's queue is empty. Close stops new calls, waits for those in
// progress, wakes blocked Waits with store.ErrClosed, stops the senders,
// the watch and the trimmer and closes the connection it dialled: after
// Close returns, the store has no goroutine left.
package natsstore
