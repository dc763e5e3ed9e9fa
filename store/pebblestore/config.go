package pebblestore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tether-run/tether/store"
)

// Config configures a Store. The zero value of every field but Dir is a
// valid choice.
type Config struct {
	// Dir is the directory the store keeps its data in. It is created if
	// missing. Required. Only one Store may have a Dir open at a time.
	Dir string

	// Retention bounds every channel's history. MaxMessages is enforced as
	// part of the append that exceeds it; MaxAge by a background trim every
	// TrimInterval, and by reads at once. Zero fields mean no bound.
	Retention store.Retention

	// DedupWindow is how long an idempotency key is remembered after the
	// append that used it. Zero means 10 minutes.
	DedupWindow time.Duration

	// TrimInterval is how often expired messages and idempotency keys are
	// deleted from disk. Zero means MaxAge/4 capped at 1s, or 1s without a
	// MaxAge; anything below 10ms is raised to 10ms.
	TrimInterval time.Duration

	// Now is the clock that stamps messages and ages them out. Nil means
	// time.Now. Stamps never go backwards: a clock that does is held at
	// the latest stamp until it catches up.
	Now func() time.Time

	// Logger receives the store's and Pebble's own log messages. Nil means
	// they are discarded. Errors Pebble repeats (a failing background
	// flush retries at once) are rate-limited.
	Logger *slog.Logger

	// Reserve is how many bytes of the filesystem holding Dir the store
	// keeps free. Appends are refused with store.ErrNoSpace, at once, while
	// less is available, so that Pebble never runs into a full disk: its
	// write-ahead log cannot survive one. They resume by themselves once
	// Reserve plus a sixteenth is available again. A quarter of the
	// reserve, at most 64 MiB, is held in a ballast file in Dir that the
	// store deletes if the disk fills anyway (another process writing to
	// it), to give Pebble room to finish what it is writing. Free space is
	// checked every second and after every Reserve/16 bytes (at most
	// 1 MiB) appended.
	//
	// Zero means DefaultReserve, but never more than a quarter of the
	// filesystem. A fixed amount rather than a share of the disk: what
	// Pebble needs to finish a flush does not grow with the disk, and a
	// share would refuse every append on a large, busy disk. Negative
	// turns the check and the ballast off. A reserve below about 16 MiB
	// may not keep Pebble off a full disk: it preallocates each
	// write-ahead log to 1.1 times its 4 MiB memtable, and one group
	// commit writes up to 4 MiB.
	Reserve int64

	// ChannelIdle is how long a channel's state (its bounds, a few dozen
	// bytes plus its name) stays in memory after its last append, read or
	// Wait, while no Wait holds it. After that the committer drops it
	// within ChannelIdle/8 plus a TrimInterval, and the next use loads it
	// from its meta on disk: one point read. Zero means
	// DefaultChannelIdle; negative keeps the state of every channel used
	// since Open in memory.
	ChannelIdle time.Duration

	// fs replaces the operating system's filesystem when set. Tests use it
	// to simulate crashes.
	fs vfs.FS
}

// DefaultReserve is the free space a store keeps on its filesystem when
// Config.Reserve is zero (see Reserve).
const DefaultReserve = 64 << 20

const (
	maxTrimInterval = time.Second
	minTrimInterval = 10 * time.Millisecond
)

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Dir == "":
		return c, errors.New("tether: pebblestore: Config.Dir is required")
	case c.Retention.MaxAge < 0:
		return c, fmt.Errorf("tether: pebblestore: negative Retention.MaxAge %v", c.Retention.MaxAge)
	case c.Retention.MaxMessages < 0:
		return c, fmt.Errorf("tether: pebblestore: negative Retention.MaxMessages %d", c.Retention.MaxMessages)
	case c.DedupWindow < 0:
		return c, fmt.Errorf("tether: pebblestore: negative DedupWindow %v", c.DedupWindow)
	case c.TrimInterval < 0:
		return c, fmt.Errorf("tether: pebblestore: negative TrimInterval %v", c.TrimInterval)
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = store.DefaultDedupWindow
	}
	if c.TrimInterval == 0 {
		c.TrimInterval = maxTrimInterval
		if c.Retention.MaxAge > 0 {
			c.TrimInterval = min(c.Retention.MaxAge/4, maxTrimInterval)
		}
	}
	c.TrimInterval = max(c.TrimInterval, minTrimInterval)
	if c.ChannelIdle == 0 {
		c.ChannelIdle = DefaultChannelIdle
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
