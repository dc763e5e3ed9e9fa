package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutCases: S subscribers of one channel over each transport, a
// publisher at a fixed rate, then flat out; each with a fresh server.
func (r *runner) fanoutCases() []benchCase {
	var cs []benchCase
	for _, tr := range r.cfg.FanoutTransports {
		for _, s := range r.cfg.FanoutSubs {
			rate := max(1, r.cfg.FanoutRate/s)
			fixed := max(1, int(float64(rate)*r.cfg.FanoutDuration.Seconds()))
			flat := max(1, r.cfg.FanoutFlat/s)
			pubs := max(1, r.cfg.FanoutPublishers)
			suffix := ""
			if pubs > 1 {
				suffix = fmt.Sprintf(" P=%d", pubs)
			}
			cs = append(cs,
				benchCase{scenario: "fanout", name: fmt.Sprintf("%s S=%d rate=%d/s x%d%s", tr, s, rate, fixed, suffix),
					systems: transportSystems(tr),
					run: func(ctx context.Context, sys System) (measure, error) {
						return r.withInstance(ctx, sys, func(in *instance) (measure, error) {
							return r.fanout(ctx, in, tr, s, fixed, pubs, time.Second/time.Duration(rate))
						})
					}},
				benchCase{scenario: "fanout", name: fmt.Sprintf("%s S=%d flat-out x%d%s", tr, s, flat, suffix),
					systems: transportSystems(tr),
					run: func(ctx context.Context, sys System) (measure, error) {
						return r.withInstance(ctx, sys, func(in *instance) (measure, error) {
							return r.fanout(ctx, in, tr, s, flat, pubs, 0)
						})
					}})
		}
	}
	return cs
}

// subscriber is one fan-out subscriber's record.
type subscriber struct {
	checks []seqCheck // one per publisher
	left   int        // publishers whose last message it has not had yet
	lat    latencies
	done   bool // had every publisher's last message, or was ended by the server
}

// pubSeqs splits the sequence numbers 1..msgs among pubs publishers:
// publisher p (from 0) sends p+1, p+1+pubs, p+1+2*pubs, ..., its k-th
// (from 1) being (k-1)*pubs+p+1; each publisher's own come in its order.
type pubSeqs struct{ msgs, pubs int64 }

// of returns which publisher sent seq, and its rank k among that one's.
func (ps pubSeqs) of(seq int64) (p int, k int64) {
	return int((seq - 1) % ps.pubs), (seq-1)/ps.pubs + 1
}

// count is how many messages publisher p sends.
func (ps pubSeqs) count(p int) int64 {
	if int64(p) >= ps.msgs {
		return 0
	}
	return (ps.msgs-1-int64(p))/ps.pubs + 1
}

// fanout subscribes subs clients over transport tr, publishes msgs
// messages from pubs concurrent publishers (one message every interval in
// all, or each publisher back to back when interval is 0) and waits until
// every subscriber has every publisher's last one (or was ended by the
// server), for at most a minute after the last publish.
//
// The measured window runs from the first publish to that moment: over
// it, the server's CPU (its whole process tree, from /proc/<pid>/stat)
// and the harness's own (getrusage: its clients and the publisher), each
// per million deliveries and as cores kept busy; and the connections the
// server ended while their clients were reading, by the reason the server
// gives (tether's tether_connection_ends_total, socket.io's disconnect
// log) or, for the others, by the close frame or error the client saw.
func (r *runner) fanout(ctx context.Context, in *instance, tr string, subs, msgs, pubs int, interval time.Duration) (measure, error) {
	const ch = "fanout"
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	d := &dialer{spread: true}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: subs, DisableCompression: true}}
	defer hc.CloseIdleConnections()

	pubs = max(1, min(pubs, msgs))
	seqs := pubSeqs{msgs: int64(msgs), pubs: int64(pubs)}
	recs := make([]*subscriber, subs)
	var complete atomic.Int64
	allDone := make(chan struct{})
	var lastRx atomic.Int64 // UnixNano of the latest delivery
	var ended endTally      // subscribers the server ended, by what the client saw
	finish := func(rec *subscriber) {
		if rec.done {
			return
		}
		rec.done = true
		if complete.Add(1) == int64(subs) {
			close(allDone)
		}
	}
	// read receives one subscriber's messages until its feed ends.
	read := func(f feed, rec *subscriber) {
		stop := context.AfterFunc(cctx, f.close)
		defer stop()
		for {
			m, err := f.next()
			if err != nil {
				if cctx.Err() == nil { // not the harness closing it: the server ended it
					ended.add(clientEnd(err))
					finish(rec)
					f.close() // its socket, at once (a close frame is not answered)
				}
				return
			}
			rx := time.Now()
			seq, sent, ok := parsePayload(m)
			if !ok || seq < 1 || seq > int64(msgs) {
				continue
			}
			p, k := seqs.of(seq)
			if !rec.checks[p].see(k) {
				continue
			}
			rec.lat = append(rec.lat, rx.Sub(sent))
			lastRx.Store(rx.UnixNano())
			if k == seqs.count(p) {
				if rec.left--; rec.left == 0 {
					finish(rec)
				}
			}
		}
	}
	var openErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 100)
	var owg sync.WaitGroup
	for i := range subs {
		recs[i] = &subscriber{checks: make([]seqCheck, pubs), left: pubs, lat: make(latencies, 0, msgs)}
		sem <- struct{}{}
		owg.Add(1)
		go func() {
			defer owg.Done()
			defer func() { <-sem }()
			f, err := openFeed(cctx, in, tr, ch, d, hc)
			if err != nil {
				mu.Lock()
				openErr = err
				mu.Unlock()
				return
			}
			// Reading starts at once: a long-poll subscriber is only
			// counted by the server while its request waits.
			wg.Go(func() { read(f, recs[i]) })
		}()
	}
	owg.Wait()
	if openErr != nil {
		return measure{}, openErr
	}
	if _, err := in.waitConnections(ctx, subs, false, 30*time.Second); err != nil {
		return measure{}, err
	}
	r.logf("fanout %s %s: %d subscribers in; publishing %d messages from %d publishers", tr, in.sys, subs, msgs, pubs)

	pc := httpClient(&dialer{}, pubs)
	defer pc.CloseIdleConnections()
	endsBefore, hasEnds, err := in.serverEnds(ctx)
	if err != nil {
		return measure{}, err
	}
	if r.cfg.fanoutStarted != nil {
		if err := r.cfg.fanoutStarted(ctx, in); err != nil {
			return measure{}, err
		}
	}
	cpu0, self0 := in.cpuNow(), selfCPU()
	mach0, machOK := machineCPU()
	start := time.Now()
	if err := publishAll(ctx, pc, in, ch, seqs, interval); err != nil {
		return measure{}, err
	}
	pubTime := time.Since(start)
	select {
	case <-allDone:
	case <-time.After(60 * time.Second):
		r.logf("fanout %s %s: not every subscriber had every message 60s after the last publish", tr, in.sys)
	case <-ctx.Done():
		return measure{}, ctx.Err()
	}
	cpu1, self1 := in.cpuNow(), selfCPU()
	mach1, machOK1 := machineCPU()
	var endsAfter map[string]int
	if hasEnds {
		if endsAfter, _, err = in.serverEnds(ctx); err != nil {
			return measure{}, err
		}
	}
	clientEnds := ended.counts() // before cancel: what follows is the harness's own closing
	cancel()
	wg.Wait()

	var all latencies
	var missed, repeated, got int64
	for _, rec := range recs {
		for p := range rec.checks {
			c := &rec.checks[p]
			c.finish(seqs.count(p))
			missed += c.missed
			repeated += c.repeated
			got += c.got
		}
		all = append(all, rec.lat...)
	}
	span := time.Unix(0, lastRx.Load()).Sub(start)
	window := cpu1.at.Sub(cpu0.at).Seconds()
	serverCPU, clientCPU := cpu1.since(cpu0).Seconds(), (self1 - self0).Seconds()
	perM := func(cpu float64) float64 {
		if got == 0 {
			return -1
		}
		return cpu / float64(got) * 1e6
	}
	m := measure{m: map[string]float64{
		"delivered_per_s":    float64(got) / span.Seconds(),
		"published_per_s":    float64(msgs) / pubTime.Seconds(),
		"p50_ms":             ms(all.quantile(0.50)),
		"p99_ms":             ms(all.quantile(0.99)),
		"max_ms":             ms(all.quantile(1)),
		"missed":             float64(missed),
		"repeated":           float64(repeated),
		"deliveries":         float64(got),
		"window_s":           window,
		"server_cpu_s":       serverCPU,
		"server_cpu_s_per_m": perM(serverCPU),
		"server_cpu_cores":   serverCPU / window,
		"client_cpu_s":       clientCPU,
		"client_cpu_s_per_m": perM(clientCPU),
		"client_cpu_cores":   clientCPU / window,
		"ended_by_server":    float64(sum(clientEnds)),
	}, text: map[string]string{}}
	if machOK && machOK1 {
		// Cores the rest of the machine kept busy meanwhile (other
		// processes, and network work not charged to either process).
		m.m["other_cpu_cores"] = max(0, (mach1-mach0).Seconds()-serverCPU-clientCPU) / window
	}
	if s := formatEnds(clientEnds); s != "" {
		m.text["ended_by_server"] = s
	}
	// Ended by heartbeat: by the server's own reason where it gives one,
	// else by the close code the client read (Centrifugo's 3012).
	ends := clientEnds
	if hasEnds {
		ends = diffEnds(endsBefore, endsAfter)
		delete(ends, "completed") // requests answered (the publishes), not connections ended
		m.m["ended_by_server_says"] = float64(sum(ends))
		if s := formatEnds(ends); s != "" {
			m.text["ended_by_server_says"] = s
		}
	}
	if hb := heartbeatReason(in.sys); hb != "" {
		m.m["ended_heartbeat"] = float64(ends[hb])
	} else {
		m.m["ended_heartbeat"] = 0
		m.text["ended_heartbeat"] = "no heartbeat"
	}
	r.logf("fanout %s %s: %.0f delivered/s, p99 %.1f ms, server CPU %.3g s per million deliveries (%.2f cores), harness %.2f cores, missed %d, repeated %d, ended by the server %d (%s)",
		tr, in.sys, m.m["delivered_per_s"], m.m["p99_ms"], m.m["server_cpu_s_per_m"], m.m["server_cpu_cores"], m.m["client_cpu_cores"],
		missed, repeated, sum(clientEnds), formatEnds(ends))
	return m, nil
}

// publishAll runs seqs.pubs publishers, each sending its own sequence
// numbers in order and waiting for each acknowledgement before the next:
// back to back when interval is 0, else each on a ticker of interval
// times the publishers, publisher p starting p intervals in, so that
// together they offer one message every interval (a publisher that falls
// behind skips ticks, as one ticker does, rather than bursting to catch
// up). It returns when all are done, or at the first error.
func publishAll(ctx context.Context, pc *http.Client, in *instance, ch string, seqs pubSeqs, interval time.Duration) error {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for p := range int(seqs.pubs) {
		wg.Go(func() {
			var tick <-chan time.Time
			if interval > 0 {
				if p > 0 {
					t := time.NewTimer(time.Duration(p) * interval)
					defer t.Stop()
					select {
					case <-t.C:
					case <-pctx.Done():
						return
					}
				}
				tk := time.NewTicker(interval * time.Duration(seqs.pubs))
				defer tk.Stop()
				tick = tk.C
			}
			n := seqs.count(p)
			for k := int64(1); k <= n; k++ {
				seq := (k-1)*seqs.pubs + int64(p) + 1
				t0 := time.Now()
				if err := publish(pctx, pc, in.sys, in.addr, ch, payload(seq, t0)); err != nil {
					cancel(fmt.Errorf("%w (message %d of %d, publisher %d of %d, after %v in flight)",
						err, seq, seqs.msgs, p+1, seqs.pubs, time.Since(t0).Round(time.Millisecond)))
					return
				}
				if tick != nil && k < n {
					select {
					case <-tick:
					case <-pctx.Done():
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(pctx); err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}
