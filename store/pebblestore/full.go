package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tether-run/tether/store"
)

// spaceCheckInterval is how often the committer checks the free space
// while nothing is appended: how soon appends resume once space returns.
const spaceCheckInterval = time.Second

// errNoDB is what reads answer after the database could not be opened
// again; the log says why.
var errNoDB = errors.New("tether: pebblestore: database unavailable after a failed reopen")

// Health implements store.Healther: degraded and read-only while appends
// are refused for want of space.
func (s *Store) Health() store.Health {
	if s.space == nil {
		return store.Health{}
	}
	return s.space.health()
}

var _ store.Healther = (*Store)(nil)

// refusing reports whether appends are refused for want of space.
func (s *Store) refusing() bool {
	return s.space != nil && s.space.refusing.Load()
}

// refuse answers a group of appends while the disk is nearly full: a
// duplicate idempotency key still gets its original cursor, anything else
// store.ErrNoSpace. It only reads.
func (s *Store) refuse(reqs []*appendReq) {
	bs := &batchState{nanos: s.cfg.Now().UnixNano()}
	for _, req := range reqs {
		var r appendReply
		switch {
		case req.ctx.Err() != nil:
			r.err = context.Cause(req.ctx)
		case req.key != "" && s.db != nil:
			e, dup, err := s.lookupIdem(bs, idemKey(req.channel, req.key))
			switch {
			case err != nil:
				r.err = fmt.Errorf("tether: pebblestore: append: %w", err)
			case dup:
				r.res = store.AppendResult{ID: formatCursor(e.seq), Time: time.Unix(0, e.nanos), Duplicate: true}
			default:
				r.err = store.ErrNoSpace
			}
		default:
			r.err = store.ErrNoSpace
		}
		req.reply <- r
	}
}

// checkSpace runs on the committer every spaceCheckInterval: it checks the
// free space, and reopens a read-only database for writing once the space
// is back.
func (s *Store) checkSpace() {
	if s.space.check() && s.readOnly {
		if s.reopen(false) && !s.readOnly {
			s.cfg.Logger.Info("pebblestore: disk space is back: reopened the database for writing", "dir", s.cfg.Dir)
		}
	}
}

// commitSafely commits b. A commit error is fatal to Pebble, which reports
// it through Logger.Fatalf; when the error is ENOSPC (the disk filled
// despite the reserve), commitSafely recovers that panic and reports the
// database unusable (broken): the caller must reopen it.
func (s *Store) commitSafely(b *pebble.Batch, o *pebble.WriteOptions) (err error, broken bool) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalError)
			if !ok || !errors.Is(f.err, syscall.ENOSPC) {
				panic(r)
			}
			err, broken = f, true
		}
	}()
	return b.Commit(o), false
}

// afterBrokenCommit takes the database out of a failed commit: Pebble's
// commit pipeline cannot be used again, so the store reopens the database
// read-only from what the disk holds (acknowledged appends all were
// synced) and refuses appends until checkSpace finds room and reopens it
// for writing.
func (s *Store) afterBrokenCommit(err error) {
	if s.space != nil {
		s.space.refuse(fmt.Sprintf("disk full (ENOSPC) under a commit in %s", s.cfg.Dir))
	}
	s.cfg.Logger.Error("pebblestore: a commit ran into a full disk; reopening the database read-only", "err", err)
	s.reopen(true)
}

// reopen closes the database and opens it again, read-only or not, from
// what the disk holds; it falls back to read-only when opening for writing
// fails. Reads wait while it runs. It reports whether a database is open
// afterwards. It runs on the committer goroutine.
func (s *Store) reopen(readOnly bool) bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return true // Close closes the database
	}
	if s.db != nil {
		if err := closeDB(s.db); err != nil {
			s.cfg.Logger.Warn("pebblestore: closing the database to reopen it", "err", err)
		}
		s.fsCloser.Close()
		s.db, s.fsCloser = nil, nil
	}
	db, fsCloser, err := s.openDB(readOnly)
	if err != nil && !readOnly {
		s.cfg.Logger.Error("pebblestore: reopening for writing failed; staying read-only", "err", err)
		db, fsCloser, err = s.openDB(true)
	}
	if err != nil {
		s.cfg.Logger.Error("pebblestore: reopening the database failed; reads fail until a restart", "err", err)
		return false
	}
	s.db, s.fsCloser = db, fsCloser
	if err := s.load(); err != nil {
		s.cfg.Logger.Error("pebblestore: reloading channels after a reopen", "err", err)
	}
	return true
}

// closeDB closes db, turning a panic of Pebble's (which a database that
// failed a commit may raise while closing) into an error.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tether: pebblestore: close panicked: %v", r)
		}
	}()
	return db.Close()
}
