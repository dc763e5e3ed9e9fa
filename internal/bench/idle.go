package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// idleCases: N connections per transport that subscribe and then wait.
func (r *runner) idleCases() []benchCase {
	var cs []benchCase
	for _, tr := range r.cfg.IdleTransports {
		cs = append(cs, benchCase{
			scenario: "idle", name: fmt.Sprintf("%s N=%d", tr, r.cfg.IdleConns), systems: transportSystems(tr),
			run: func(ctx context.Context, sys System) (measure, error) {
				return r.withInstance(ctx, sys, func(in *instance) (measure, error) {
					return r.idle(ctx, in, tr, r.cfg.IdleConns)
				})
			},
		})
	}
	return cs
}

// idle opens n idle connections of transport tr to in and measures the
// server's memory and goroutines per connection: the difference between
// before and once the server counts all n (or after 20 s, what it holds),
// divided by the connections it holds.
func (r *runner) idle(ctx context.Context, in *instance, tr string, n int) (measure, error) {
	const ch = "idle"
	rss0, err := in.rss()
	if err != nil {
		return measure{}, err
	}
	g0, hasG, err := in.goroutines(ctx)
	if err != nil {
		return measure{}, err
	}
	base, err := in.connections(ctx)
	if err != nil {
		return measure{}, err
	}

	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	d := &dialer{spread: true}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: -1, DisableCompression: true}}
	defer hc.CloseIdleConnections()

	start := time.Now()
	var opened, failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 200) // connections being opened at once
	for i := 0; i < n && cctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.holdOne(cctx, in, tr, ch, d, hc, func() { <-sem; opened.Add(1) })
			if err != nil && cctx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
		if i%10000 == 9999 {
			r.logf("idle %s %s: %d connections opening or open", tr, in.sys, i+1)
		}
	}
	// Every goroutine has released its slot: opened, or failed.
	for range cap(sem) {
		sem <- struct{}{}
	}
	if f := failed.Load(); f > 0 {
		return measure{}, fmt.Errorf("bench: idle: %d of %d connections failed, first: %v", f, n, firstErr.Load())
	}
	// A server may end some of them meanwhile (tether's keepalive did, at
	// 19k connections on loopback): measure what it holds, and say how
	// many it dropped.
	got, err := in.waitConnections(ctx, base+n, false, 20*time.Second)
	if err != nil {
		r.logf("idle %s %s: %v; measuring the %d it holds", tr, in.sys, err, got-base)
	}
	openTime := time.Since(start)
	time.Sleep(r.cfg.IdleSettle)
	rss1, err := in.rss()
	if err != nil {
		return measure{}, err
	}
	if got, err = in.connections(ctx); err != nil {
		return measure{}, err
	}
	held := got - base
	if held <= 0 {
		return measure{}, fmt.Errorf("bench: idle: %s holds no connections", in.sys)
	}
	m := measure{m: map[string]float64{
		"conns":              float64(held),
		"dropped":            float64(n - held),
		"rss_per_conn_bytes": float64(rss1-rss0) / float64(held),
		"rss_mib":            float64(rss1) / (1 << 20),
		"open_per_s":         float64(n) / openTime.Seconds(),
	}}
	if hasG {
		g1, _, err := in.goroutines(ctx)
		if err != nil {
			return measure{}, err
		}
		m.m["goroutines_per_conn"] = (g1 - g0) / float64(held)
	}
	r.logf("idle %s %s: %d connections, %.0f B each", tr, in.sys, n, m.m["rss_per_conn_bytes"])
	if in.ends != nil {
		if ends := in.ends.counts(); len(ends) > 0 {
			r.logf("idle %s %s: connections the server ended meanwhile, by reason: %v", tr, in.sys, ends)
		}
	}
	return m, nil
}

// holdOne opens one connection, calls opened once it is established as far
// as the client can tell, and holds it (answering heartbeats) until ctx
// ends.
func (r *runner) holdOne(ctx context.Context, in *instance, tr, ch string, d *dialer, hc *http.Client, opened func()) error {
	var once sync.Once
	done := func() { once.Do(opened) }
	defer done()
	switch tr {
	case "websocket", "tcp":
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		dial := dialWS
		addr := in.addr
		if tr == "tcp" {
			dial, addr = dialTCP, in.tcpAddr
		}
		s, err := dial(dctx, in.sys, addr, ch, d)
		cancel()
		if err != nil {
			return err
		}
		done()
		stop := context.AfterFunc(ctx, s.closeNow)
		defer stop()
		s.drain()
		return nil
	case "sse":
		s, err := openSSE(ctx, d, in.sys, in.addr, ch, "", false)
		if err != nil {
			return err
		}
		done()
		defer s.close()
		for {
			if _, err := s.message(); err != nil {
				return nil
			}
		}
	case "long-poll":
		// No answer comes until the wait ends: the server's count of
		// connections says when it holds them all.
		return longPoll(ctx, hc, in.sys, in.addr, ch, done)
	}
	return fmt.Errorf("bench: unknown transport %q", tr)
}
