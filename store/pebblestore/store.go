package pebblestore

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tether-run/tether/store"
)

// Store is a store.Store kept in a Pebble database. Create one with Open.
type Store struct {
	cfg Config
	// db and fsCloser (which stops the disk-health checker, after
	// db.Close) change only when the committer reopens the database, with
	// life write-locked; readOnly tells how it is open. Between reopens,
	// the committer goroutine owns readOnly.
	db       *pebble.DB
	fsCloser io.Closer
	readOnly bool
	// space refuses appends while the disk is nearly full; nil when
	// Config.Reserve turns it off.
	space *space

	// life orders Close after every call that uses db: Read and Bounds hold
	// it read-locked while they touch db, Append while it enqueues, and
	// Close write-locks it to set closed. Lock order: life, then mu.
	life    sync.RWMutex
	closed  bool           // guarded by life
	senders sync.WaitGroup // Appends between the closed check and the queue

	// closing is closed when Close starts; it wakes blocked Waits.
	closing chan struct{}
	// queue carries appends to the committer goroutine. It is closed by
	// Close once no sender can use it, which makes the committer drain it
	// and exit.
	queue         chan *appendReq
	committerDone chan struct{}

	// mu guards the in-memory channel state (chans.go). dropped counts
	// entries removed from chans; chansPeak is the most entries chans held
	// since it was last made anew.
	mu        sync.RWMutex
	chans     map[string]*channel // guarded by mu
	dropped   uint64              // guarded by mu
	chansPeak int                 // guarded by mu

	// clock is a coarse Config.Now in Unix nanoseconds, set on each
	// committer tick: when a channel was last used. lastSweep is when
	// evictIdle last looked for idle channels; owned by the committer.
	clock     atomic.Int64
	lastSweep int64
	// coldFrom is the meta key the next trimCold starts from, nil for the
	// first; owned by the committer.
	coldFrom []byte

	// lastNanos is the latest accept time handed out, so that stamps never
	// go backwards. Owned by the committer goroutine (and Open before it).
	lastNanos int64

	stats stats
}

// stats count the committer's work, for benchmarks and tests.
type stats struct {
	syncs   atomic.Int64 // batches committed with an fsync
	appends atomic.Int64 // messages written (duplicates excluded)
}

const (
	// queueLen bounds Appends waiting for the committer. When it is full,
	// Append blocks until there is room or its ctx ends.
	queueLen = 4096
	// maxBatch and maxBatchBytes bound one group commit.
	maxBatch      = 1024
	maxBatchBytes = 4 << 20
)

// Open opens or creates the store in cfg.Dir and starts its committer
// goroutine, which Close stops. On a disk with less free space than the
// reserve it opens the database read-only and says so in the log: reads
// and waits work, appends are refused with store.ErrNoSpace, and the store
// reopens the database for writing by itself once space returns.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:           cfg,
		closing:       make(chan struct{}),
		queue:         make(chan *appendReq, queueLen),
		committerDone: make(chan struct{}),
		chans:         map[string]*channel{},
	}
	s.clock.Store(cfg.Now().UnixNano())
	if s.space, err = newSpace(cfg); err != nil {
		return nil, err
	}
	if s.space != nil && s.space.check() {
		if err := s.space.ensureBallast(); err != nil {
			cfg.Logger.Warn("pebblestore: cannot make the ballast file; a disk filled by another process may stop the store", "err", err)
		}
	}
	readOnly := s.space != nil && s.space.refusing.Load()
	if s.db, s.fsCloser, err = s.openDB(readOnly); err != nil {
		if readOnly {
			err = fmt.Errorf("%w (and the disk is full: %w)", err, store.ErrNoSpace)
		}
		return nil, err
	}
	if readOnly {
		cfg.Logger.Error("pebblestore: disk full at start-up: opened read-only; appends are refused until space returns",
			"dir", cfg.Dir, "reason", s.space.health().Reason)
	}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, s.db.Close(), s.fsCloser.Close())
	}
	go s.runCommitter()
	return s, nil
}

// openDB opens the Pebble database in cfg.Dir, read-only or not.
func (s *Store) openDB(readOnly bool) (*pebble.DB, io.Closer, error) {
	opts, fsCloser := pebbleOptions(s.cfg, s.space)
	opts.ReadOnly = readOnly
	db, err := pebble.Open(s.cfg.Dir, opts)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// Pebble's LOCK file is held (flock, LOCK_NB): by another process,
		// as two stores in one process share nothing either.
		err = fmt.Errorf("%w: another tether process holds %s (its LOCK file); stop it, or give this one another data directory", ErrLocked, s.cfg.Dir)
		return nil, nil, errors.Join(err, fsCloser.Close())
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("tether: pebblestore: open %s: %w", s.cfg.Dir, err), fsCloser.Close())
	}
	s.readOnly = readOnly
	if s.space != nil {
		s.space.setReadOnly(readOnly)
	}
	return db, fsCloser, nil
}

// ErrLocked means the data directory is in use by another store: Open
// fails at once rather than wait for it.
var ErrLocked = errors.New("data directory in use")

// pebbleOptions returns the options to open cfg.Dir with, and the closer of
// the disk-health-checking filesystem in them. Pebble would build that
// filesystem itself, but leaks its goroutine when Open fails (pebble
// v2.1.7), so the store owns it and closes it after the database. With a
// space watch, the filesystem reports ENOSPC to it (vfs.OnDiskFull).
func pebbleOptions(cfg Config, sp *space) (*pebble.Options, io.Closer) {
	logger := cfg.Logger.With("component", "pebble")
	inner := vfs.Default
	if cfg.fs != nil {
		inner = cfg.fs
	}
	if sp != nil {
		inner = vfs.OnDiskFull(inner, sp.onDiskFull)
	}
	fs, fsCloser := vfs.WithDiskHealthChecks(inner, slowDisk, nil, func(info vfs.DiskSlowInfo) {
		logger.Warn("slow disk operation", "path", info.Path, "op", fmt.Sprint(info.OpType), "duration", info.Duration)
	})
	opts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             newPebbleLogger(logger),
	}
	// Idempotency keys are looked up one by one and are mostly absent:
	// bloom filters answer those misses without reading blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return opts, fsCloser
}

// slowDisk is how long a disk operation may take before it is logged.
const slowDisk = 5 * time.Second

// load checks the format version and finds the latest accept time in the
// channels' meta; it keeps none of them in memory (chans.go loads a channel
// when it is used). After a reopen it moves the channels in memory to what
// the disk holds, waking their waiters.
func (s *Store) load() error {
	if err := s.checkVersion(); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindMeta},
		UpperBound: []byte{kindMeta + 1},
	})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		m, err := decodeMeta(it.Value())
		if err != nil {
			return fmt.Errorf("%w: meta of %q", err, it.Key()[1:])
		}
		s.lastNanos = max(s.lastNanos, m.lastNanos)
	}
	if err := it.Error(); err != nil {
		return err
	}
	return s.reload()
}

func (s *Store) checkVersion() error {
	v, closer, err := s.db.Get(versionKey)
	if errors.Is(err, pebble.ErrNotFound) && !s.readOnly {
		return s.db.Set(versionKey, []byte{formatVersion}, pebble.Sync)
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(v) != 1 || v[0] != formatVersion {
		return fmt.Errorf("tether: pebblestore: %s holds format %x, want %d", s.cfg.Dir, v, formatVersion)
	}
	return nil
}

// Close stops accepting calls, lets the committer finish what is queued,
// wakes blocked Waits with store.ErrClosed and closes the database. It
// returns store.ErrClosed when called again.
func (s *Store) Close() error {
	s.life.Lock() // waits for Reads and Bounds in progress
	if s.closed {
		s.life.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	close(s.closing)
	s.life.Unlock()

	s.senders.Wait() // no Append can reach the queue from here on
	close(s.queue)
	<-s.committerDone
	if s.db == nil { // a reopen failed; the error was logged
		return nil
	}
	return errors.Join(s.db.Close(), s.fsCloser.Close())
}

// use read-locks life for a call that touches db; the caller must call the
// returned func when done.
func (s *Store) use() (done func(), err error) {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, store.ErrClosed
	}
	if s.db == nil {
		s.life.RUnlock()
		return nil, errNoDB
	}
	return s.life.RUnlock, nil
}

var _ store.Store = (*Store)(nil)
