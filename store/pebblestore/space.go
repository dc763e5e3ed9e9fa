package pebblestore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tether-run/tether/store"
)

// Pebble cannot live through a full disk. Every commit error is fatal to it
// (DB.Apply calls Logger.Fatalf: "pebble: fatal commit error"), because a
// write-ahead log that failed to grow leaves its commit pipeline unusable;
// a flush that fails is retried at once, in a loop, while writes stall
// behind the full memtable. So the store never lets Pebble get there: it
// refuses appends while less than the reserve is free (space), and keeps
// part of the reserve in a ballast file that it deletes from Pebble's
// disk-full callback (vfs.OnDiskFull) when something else filled the disk,
// so that the write Pebble retries then succeeds.

const (
	mib = 1 << 20
	// Bounds of how many bytes may be appended between two free-space
	// checks: Reserve/16 within these.
	minCheckEvery = 64 << 10
	maxCheckEvery = 1 * mib
	// maxBallast bounds the ballast: enough for the flush or compaction
	// output Pebble is writing when the disk fills, without taking a
	// gigabyte from every store (and every test's temporary store).
	maxBallast = 64 * mib
	// ballastName is the ballast file in Dir. Pebble ignores files whose
	// names it does not know.
	ballastName = "TETHER-BALLAST"
)

// defaultReserve is the reserve for a filesystem of total bytes when
// Config.Reserve is zero: DefaultReserve, but at most a quarter of it.
func defaultReserve(total uint64) int64 {
	return int64(min(uint64(DefaultReserve), total/4))
}

// space watches the free space of the filesystem holding the store's
// directory and decides whether appends are accepted. check and wrote are
// called by the committer goroutine only; onDiskFull by whichever Pebble
// goroutine hit ENOSPC; refusing and health by anyone.
type space struct {
	dir         string
	ballastPath string
	reserve     int64 // bytes kept free, ballast included
	ballastSize int64
	checkEvery  int64 // bytes appended between two checks
	log         *slog.Logger

	// refusing is set while appends are refused; read on every Append.
	refusing atomic.Bool

	mu         sync.Mutex
	hasBallast bool   // guarded by mu
	avail      int64  // guarded by mu; free bytes at the last check
	readOnly   bool   // guarded by mu; the database is open read-only
	reason     string // guarded by mu; why appends are refused

	sinceCheck int64 // owned by the committer: bytes committed since the last check
}

// newSpace returns the free-space watch for cfg, or nil when Config.Reserve
// turns it off or the store runs on a test filesystem.
func newSpace(cfg Config) (*space, error) {
	if cfg.Reserve < 0 || cfg.fs != nil {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tether: pebblestore: %w", err)
	}
	du, err := vfs.Default.GetDiskUsage(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("tether: pebblestore: free space of %s: %w", cfg.Dir, err)
	}
	sp := &space{
		dir:         cfg.Dir,
		ballastPath: filepath.Join(cfg.Dir, ballastName),
		reserve:     cfg.Reserve,
		log:         cfg.Logger,
		avail:       int64(du.AvailBytes),
	}
	if sp.reserve == 0 {
		sp.reserve = defaultReserve(du.TotalBytes)
	}
	sp.ballastSize = min(sp.reserve/4, maxBallast)
	sp.checkEvery = min(max(sp.reserve/16, minCheckEvery), maxCheckEvery)
	switch fi, err := os.Stat(sp.ballastPath); {
	case err == nil && fi.Size() == sp.ballastSize:
		sp.hasBallast = true
	case err == nil: // left by another Reserve: make it again
		if err := os.Remove(sp.ballastPath); err != nil {
			return nil, fmt.Errorf("tether: pebblestore: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tether: pebblestore: %w", err)
	}
	return sp, nil
}

// check reads the free space and decides whether appends are accepted:
// refused once the free space, ballast included, is below the reserve, and
// accepted again once it is a sixteenth above it and the ballast is back.
// Only transitions are logged. It returns whether appends are accepted.
func (sp *space) check() bool {
	sp.sinceCheck = 0
	du, err := vfs.Default.GetDiskUsage(sp.dir)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err != nil {
		// Keep the last decision: a failing statfs says nothing of space.
		return !sp.refusing.Load()
	}
	sp.avail = int64(du.AvailBytes)
	free := sp.avail
	if sp.hasBallast {
		free += sp.ballastSize
	}
	switch refusing := sp.refusing.Load(); {
	case !refusing && free < sp.reserve:
		sp.refuseLocked(fmt.Sprintf("disk nearly full: %s free in %s, reserve %s", fmtBytes(free), sp.dir, fmtBytes(sp.reserve)))
		sp.log.Error("pebblestore: refusing appends: "+sp.reason, "free", free, "reserve", sp.reserve)
	case refusing && free >= sp.reserve+sp.reserve/16:
		if !sp.hasBallast {
			if err := makeBallast(sp.ballastPath, sp.ballastSize); err != nil {
				os.Remove(sp.ballastPath)
				return false // tried again at the next check
			}
			sp.hasBallast = true
		}
		sp.reason = ""
		sp.refusing.Store(false)
		sp.log.Info("pebblestore: disk space is back, accepting appends", "free", free, "reserve", sp.reserve)
	}
	return !sp.refusing.Load()
}

// refuse starts refusing appends for reason.
func (sp *space) refuse(reason string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.refuseLocked(reason)
}

// refuseLocked starts refusing appends for reason.
func (sp *space) refuseLocked(reason string) {
	sp.reason = reason
	sp.refusing.Store(true)
}

// wrote counts bytes committed, and checks the free space once enough have
// been since the last check.
func (sp *space) wrote(n int) {
	sp.sinceCheck += int64(n)
	if sp.sinceCheck >= sp.checkEvery {
		sp.check()
	}
}

// onDiskFull is Pebble's disk-full callback (vfs.OnDiskFull): the disk
// filled despite the reserve, so something else is writing to it. It
// deletes the ballast, so that the write Pebble retries after it returns
// finds room, and refuses appends. Pebble blocks every write while it runs,
// so it does nothing slow.
func (sp *space) onDiskFull() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	freed := "no ballast left to free"
	if sp.hasBallast {
		if err := os.Remove(sp.ballastPath); err == nil {
			freed = "deleted the ballast, " + fmtBytes(sp.ballastSize)
		}
		sp.hasBallast = false
	}
	sp.refuseLocked(fmt.Sprintf("disk full (ENOSPC) in %s", sp.dir))
	sp.log.Error("pebblestore: disk full, refusing appends; "+freed, "dir", sp.dir)
}

// setReadOnly records whether the database is open read-only.
func (sp *space) setReadOnly(ro bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.readOnly = ro
}

// health reports the store's health as the space watch sees it.
func (sp *space) health() store.Health {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.refusing.Load() {
		return store.Health{}
	}
	reason := sp.reason + "; appends refused"
	if sp.readOnly {
		reason += "; database open read-only"
	}
	return store.Health{Degraded: true, ReadOnly: true, Reason: reason}
}

// ensureBallast makes the ballast file if it is missing. Open calls it
// before Pebble starts, when there is room.
func (sp *space) ensureBallast() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.hasBallast {
		return nil
	}
	if err := makeBallast(sp.ballastPath, sp.ballastSize); err != nil {
		os.Remove(sp.ballastPath)
		return err
	}
	sp.hasBallast = true
	return nil
}

// makeBallast writes a file of size bytes at path, allocated on disk.
func makeBallast(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if size > 0 { // fallocate(2) refuses a length of 0
		err = allocate(f, size)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// writeZeros allocates size bytes of f by writing them, for filesystems
// without fallocate.
func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, min(size, mib))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func fmtBytes(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/mib)
}
