// Package pebblestore is tether's embedded storage engine: a [store.Store]
// kept in a Pebble database in one local directory.
//
//	s, err := pebblestore.Open(pebblestore.Config{
//		Dir:       "/var/lib/tether",
//		Retention: store.Retention{MaxAge: 24 * time.Hour},
//		Logger:    logger,
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	res, err := s.Append(ctx, "orders", payload, store.AppendOptions{IdempotencyKey: id})
//
// # Writes: group commit
//
// One committer goroutine owns every write. Append queues its request and
// waits; the committer takes everything queued (up to 1024 appends or 4 MiB),
// assigns each channel's next sequence numbers, resolves idempotency keys
// against disk and against the rest of the group, applies MaxMessages, and
// writes messages, channel meta and idempotency keys in one Pebble batch
// committed with one fsync. Only then does it publish the channels' new last
// sequence numbers, wake their waiters and reply. Concurrent appends thus
// share an fsync, and a reader never sees a message that is not durable,
// nor message n+1 before n.
//
// An idempotency key is remembered for Config.DedupWindow, across restarts;
// a duplicate names the original message even if retention has since
// removed it.
//
// The committer also runs retention every Config.TrimInterval: it deletes
// messages older than MaxAge and idempotency keys past the dedup window.
// Reads do not wait for it: they hide expired messages themselves.
//
// # Disk space
//
// Pebble does not survive a full disk: a write-ahead log that cannot grow
// fails the commit, which Pebble treats as fatal ("pebble: fatal commit
// error"), and a flush that cannot write retries at once, in a loop,
// while writes stall behind it. So the store keeps a reserve of free space
// (Config.Reserve; by default DefaultReserve, 64 MiB, at most a quarter
// of the filesystem). Once less is free, appends are refused at once
// with store.ErrNoSpace while reads, Bounds and Waits go on, and Health
// reports the store degraded and read-only. The committer checks the free
// space (statfs) every second and after every Reserve/16 bytes appended
// (at most 1 MiB), so a check is never a syscall per append; appends
// resume by themselves once the reserve and a sixteenth of it are free.
// Only the changes between refusing and accepting are logged.
//
// A quarter of the reserve, at most 64 MiB, is a ballast file,
// TETHER-BALLAST in Dir, allocated with fallocate(2) in an instant. When
// something else fills the disk and Pebble meets ENOSPC anyway, Pebble's
// disk-full callback (vfs.OnDiskFull) deletes it and Pebble retries the
// write into the room it made; appends are refused from then on. If even
// that is not enough and a commit fails, the store recovers Pebble's fatal
// error instead of crashing, answers that group of appends ErrNoSpace (the
// one case where a refused append may have been made: an idempotency key
// makes its retry safe), and reopens the database read-only from disk,
// where every acknowledged append is. Opened on a disk with less free
// space than the reserve, the store starts read-only and says so in the
// log. A read-only store reopens the database for writing by itself once
// the space is back; reads wait for the moment it takes.
//
// # Memory
//
// The store keeps the bounds and waiters of the channels in use in memory,
// loaded from each channel's meta on disk when first used. A channel
// unused for Config.ChannelIdle (DefaultChannelIdle, one minute) that no
// Wait holds is dropped, so memory follows the channels in use rather
// than every channel ever touched; retention still ages out the channels
// that are not in memory, walking their metas on disk a slice per trim.
//
// # Cursors
//
// A cursor is the message's sequence number in its channel, in decimal: "1"
// is the first message a channel ever had, and store.Start ("0") is before
// it. Sequence numbers are never reused, even when retention has removed
// every message, because a channel's meta outlives its messages.
//
// # Concurrency
//
// All methods of Store are safe for concurrent use. Append blocks while the
// queue of 4096 pending appends is full, until there is room or its ctx
// ends. Read and Bounds read a consistent snapshot. Wait registers on an
// in-memory per-channel broadcast channel that the committer closes and
// replaces on each append; a Wait that returns, for whatever reason, leaves
// nothing registered. Close stops new calls, lets the committer finish what
// is queued, wakes blocked Waits with store.ErrClosed, waits for the
// committer goroutine to exit and closes the database: after Close returns,
// the store has no goroutine left.
package pebblestore
