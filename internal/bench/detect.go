package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-run/tether/internal/netnstest"
)

// detectCases: one idle WebSocket subscriber leaves by RST, by FIN, or by
// going silent; how long until the server reports it.
func (r *runner) detectCases() []benchCase {
	var cs []benchCase
	for _, mode := range r.cfg.DetectModes {
		bc := benchCase{scenario: "detection", name: mode, systems: []System{Tether, TetherBefore, Nchan, SocketIO, Centrifugo},
			run: func(ctx context.Context, sys System) (measure, error) {
				return r.detect(ctx, sys, mode)
			}}
		if mode == "silent" {
			bc.once = true
			bc.skip = netnsSupport()
		}
		cs = append(cs, bc)
	}
	return cs
}

// detect runs one departure of the given mode against a fresh sys. The
// silent mode runs the server in one network namespace and the client in
// another, and pulls the client's cable with an nft drop rule; the others
// run on loopback.
//
// What "the server reports it" means differs: tether logs "connection
// ended" with its reason, socket.io's server script logs its "disconnect"
// event with its reason, and Nchan and Centrifugo (at its info log level)
// have no per-connection event, so their client count (nchan_stub_status,
// Centrifugo's info API) going down stands for it, polled every 5 ms.
func (r *runner) detect(ctx context.Context, sys System, mode string) (measure, error) {
	pl := loopback
	timeout := 10 * time.Second
	if mode == "silent" {
		pair, err := newNetnsPair()
		if err != nil {
			return measure{}, err
		}
		defer pair.close()
		pl = place{host: netnstest.ServerIP, pair: pair}
		timeout = r.cfg.SilentTimeout
	}
	in, err := startSystem(ctx, &r.cfg, sys, pl, r.tmp)
	if err != nil {
		return measure{}, err
	}
	defer in.stop()

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := dialWS(dctx, sys, in.addr, "detect", clientPlace(pl, false))
	cancel()
	if err != nil {
		return measure{}, err
	}
	defer s.closeNow()
	go s.drain()
	before, err := in.waitConnections(ctx, 1, false, 10*time.Second)
	if err != nil {
		return measure{}, err
	}
	var ended <-chan endEvent
	if in.ends != nil {
		ended = in.ends.watch(s.local)
	}

	t0 := time.Now()
	switch mode {
	case "rst":
		s.reset()
	case "fin":
		s.closeNow()
	case "silent":
		if err := pl.pair.drop(); err != nil {
			return measure{}, err
		}
	default:
		return measure{}, fmt.Errorf("bench: unknown detection mode %q", mode)
	}

	ev, err := waitEnd(ctx, in, ended, before, timeout)
	if errors.Is(err, errNotNoticed) {
		r.logf("detection %s %s: not noticed within %v", mode, sys, timeout)
		return measure{m: map[string]float64{"seconds": -1}, text: map[string]string{"seconds": "not within " + timeout.String()}}, nil
	}
	if err != nil {
		return measure{}, err
	}
	secs := ev.at.Sub(t0).Seconds()
	r.logf("detection %s %s: %.4f s (%s)", mode, sys, secs, ev.reason)
	return measure{m: map[string]float64{"seconds": secs}, text: map[string]string{"seconds": ev.reason}}, nil
}

var errNotNoticed = errors.New("bench: departure not noticed")

// waitEnd waits for the end event, or, for a server that reports none, for
// its count of connections to fall below before.
func waitEnd(ctx context.Context, in *instance, ended <-chan endEvent, before int, timeout time.Duration) (endEvent, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if ended != nil {
		select {
		case ev := <-ended:
			return ev, nil
		case <-deadline.C:
			return endEvent{}, errNotNoticed
		case <-ctx.Done():
			return endEvent{}, ctx.Err()
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			n, err := in.connections(ctx)
			if err == nil && n < before {
				return endEvent{reason: "subscriber count fell", at: time.Now()}, nil
			}
		case <-deadline.C:
			return endEvent{}, errNotNoticed
		case <-ctx.Done():
			return endEvent{}, ctx.Err()
		}
	}
}
