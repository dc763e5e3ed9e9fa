package natsstore

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// runTrimmer deletes expired messages every trim interval until Close. It
// runs in its own goroutine, started by Open when there is a MaxAge, and
// closes trimmerDone when it exits.
//
// JetStream's own MaxAge is not used because it would also remove each
// channel's newest message, the one that holds the channel's Latest. The
// trimmer removes every expired message but the newest of its channel;
// reads hide expired messages at once, so trimming only reclaims space.
// Several stores on one stream all trim; a purge is idempotent.
func (s *Store) runTrimmer() {
	defer close(s.trimmerDone)
	// ctx ends the pass in progress when Close starts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(s.cfg.trimInterval())
	defer t.Stop()
	var from uint64 = 1
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		tctx, tcancel := context.WithTimeout(ctx, opTimeout)
		next, err := s.trim(tctx, from)
		tcancel()
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}
			s.cfg.Logger.Warn("natsstore: trim", "err", err)
			continue
		}
		from = next
	}
}

// trimPages bounds the pages one trim pass scans.
const trimPages = 16

// trim scans the stream from sequence from for expired messages and purges
// their channels of every expired message but the newest. It returns where
// the next pass starts: messages before it that are still there are the
// newest of their channels, which stay until a newer one expires and the
// next purge of that channel takes them too.
func (s *Store) trim(ctx context.Context, from uint64) (uint64, error) {
	for range trimPages {
		cutoff := s.cutoff()
		page, err := s.directBatch(ctx, "", from, maxBatch)
		if err != nil {
			return from, err
		}
		subjects := map[string]bool{}
		done := len(page) < maxBatch
		for _, m := range page {
			if m.time.After(cutoff) {
				done = true
				break
			}
			subjects[m.subject] = true
			from = m.seq + 1
		}
		for subj := range subjects {
			if err := s.purgeExpired(ctx, subj); err != nil {
				return from, err
			}
		}
		if done {
			break
		}
	}
	return from, nil
}

// purgeExpired removes the expired messages of one channel subject, except
// its newest message.
func (s *Store) purgeExpired(ctx context.Context, subject string) error {
	last, err := s.latest(ctx, subject)
	if err != nil || last == 0 {
		return err
	}
	keep := last
	first, err := s.scan(ctx, subject, 1, last, 1) // oldest unexpired
	if err != nil {
		return err
	}
	if len(first) > 0 {
		keep = min(keep, first[0].seq)
	}
	return s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(keep))
}
