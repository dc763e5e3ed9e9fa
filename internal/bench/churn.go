package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// churnCases: SSE clients that keep leaving and resuming by event id.
// socket.io keeps no history to resume from, so it has no case here.
func (r *runner) churnCases() []benchCase {
	return []benchCase{{scenario: "churn", name: fmt.Sprintf("clients=%d rate=%d/s", r.cfg.ChurnClients, r.cfg.ChurnRate),
		systems: []System{Tether, TetherBefore, Nchan, SocketIO, Centrifugo},
		skipFor: map[System]string{SocketIO: noResume},
		run: func(ctx context.Context, sys System) (measure, error) {
			return r.withInstance(ctx, sys, func(in *instance) (measure, error) {
				return r.churn(ctx, in)
			})
		}}}
}

const noResume = "socket.io has no resume by cursor (its optional connection state recovery is in memory and time-bounded)"

// churn publishes ChurnRate messages/s for ChurnDuration while
// ChurnClients clients each loop: open an SSE stream after the last event
// id it saw (from the start the first time), read one to three messages or
// for up to 100 ms, and close. At the end each reads until it has the last
// message; every client must have seen every message exactly once.
func (r *runner) churn(ctx context.Context, in *instance) (measure, error) {
	const ch = "churn"
	n := r.cfg.ChurnClients
	total := max(1, int(float64(r.cfg.ChurnRate)*r.cfg.ChurnDuration.Seconds()))
	d := &dialer{spread: true}

	// The channel exists before the clients come (Nchan answers a
	// subscriber of an unknown channel the same as one of an empty one,
	// but the first message sets its epoch).
	var pubErr error
	publisherDone := make(chan struct{})
	pc := httpClient(&dialer{}, 1)
	defer pc.CloseIdleConnections()
	if err := publish(ctx, pc, in.sys, in.addr, ch, payload(1, time.Now())); err != nil {
		return measure{}, err
	}
	start := time.Now()
	go func() {
		defer close(publisherDone)
		tick := time.NewTicker(time.Second / time.Duration(r.cfg.ChurnRate))
		defer tick.Stop()
		for seq := int64(2); seq <= int64(total); seq++ {
			<-tick.C
			if err := publish(ctx, pc, in.sys, in.addr, ch, payload(seq, time.Now())); err != nil {
				pubErr = err
				return
			}
		}
	}()

	var connects, failures atomic.Int64
	checks := make([]seqCheck, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &checks[i]
			last := ""
			session := func(budget time.Duration, want int) {
				sctx, cancel := context.WithTimeout(ctx, budget)
				defer cancel()
				s, err := openSSE(sctx, d, in.sys, in.addr, ch, last, true)
				if err != nil {
					if sctx.Err() == nil {
						failures.Add(1)
					}
					return
				}
				connects.Add(1)
				defer s.close()
				for got := 0; got < want; got++ {
					ev, err := s.message()
					if err != nil {
						return
					}
					if seq, _, ok := parsePayload(ev.data); ok {
						c.see(seq)
						last = string(ev.id)
					}
				}
			}
			for {
				select {
				case <-publisherDone:
					// Catch up to the end, bounded.
					for range 100 {
						if c.last >= int64(total) || ctx.Err() != nil {
							return
						}
						session(5*time.Second, total-int(c.last))
					}
					return
				default:
				}
				session(100*time.Millisecond, 1+rand.IntN(3))
			}
		}()
	}
	<-publisherDone
	elapsed := time.Since(start)
	wg.Wait()
	if pubErr != nil {
		return measure{}, pubErr
	}
	var missed, repeated int64
	for i := range checks {
		checks[i].finish(int64(total))
		missed += checks[i].missed
		repeated += checks[i].repeated
	}
	m := measure{m: map[string]float64{
		"connects_per_s":  float64(connects.Load()) / elapsed.Seconds(),
		"messages":        float64(total),
		"missed":          float64(missed),
		"repeated":        float64(repeated),
		"failed_connects": float64(failures.Load()),
	}}
	r.logf("churn %s: %.0f connects/s, missed %d, repeated %d", in.sys, m.m["connects_per_s"], missed, repeated)
	return m, nil
}
