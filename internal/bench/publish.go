package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// publishCases: P concurrent HTTP publishers to one channel.
func (r *runner) publishCases() []benchCase {
	var cs []benchCase
	for _, p := range r.cfg.PublishConcurrency {
		cs = append(cs, benchCase{scenario: "publish", name: fmt.Sprintf("publishers=%d", p),
			systems: []System{Tether, TetherBefore, Nchan, SocketIO, Centrifugo},
			run: func(ctx context.Context, sys System) (measure, error) {
				return r.withInstance(ctx, sys, func(in *instance) (measure, error) {
					return r.publish(ctx, in, p, r.cfg.PublishDuration)
				})
			}})
	}
	return cs
}

// publish runs p publishers, each on its own kept-alive connection sending
// one message at a time, for d, and counts the acknowledged ones.
func (r *runner) publish(ctx context.Context, in *instance, p int, d time.Duration) (measure, error) {
	const ch = "publish"
	c := httpClient(&dialer{spread: true}, p)
	defer c.CloseIdleConnections()
	// Warm up: one connection per publisher, and the channel exists.
	if err := publish(ctx, c, in.sys, in.addr, ch, payload(0, time.Now())); err != nil {
		return measure{}, err
	}
	var wg sync.WaitGroup
	var seq, failed atomic.Int64
	var firstErr atomic.Value
	lats := make([]latencies, p)
	start := time.Now()
	deadline := start.Add(d)
	for i := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := publish(ctx, c, in.sys, in.addr, ch, payload(seq.Add(1), t)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all latencies
	for _, l := range lats {
		all = append(all, l...)
	}
	if f := failed.Load(); f > 0 {
		r.logf("publish %s: %d publishes failed, first: %v", in.sys, f, firstErr.Load())
	}
	m := measure{m: map[string]float64{
		"appends_per_s": float64(len(all)) / elapsed.Seconds(),
		"p50_ms":        ms(all.quantile(0.50)),
		"p99_ms":        ms(all.quantile(0.99)),
		"errors":        float64(failed.Load()),
	}}
	r.logf("publish %s P=%d: %.0f/s, p99 %.2f ms", in.sys, p, m.m["appends_per_s"], m.m["p99_ms"])
	return m, nil
}
