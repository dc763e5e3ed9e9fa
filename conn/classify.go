package conn

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// tcpState is tcpi_state (include/net/tcp_states.h).
type tcpState uint8

const (
	tcpEstablished tcpState = 1
	tcpClose       tcpState = 7 // after an RST, or when the kernel gave up
	tcpCloseWait   tcpState = 8 // the peer sent FIN: half- or fully closed
)

// sockInfo is the part of TCP_INFO that Watch uses.
type sockInfo struct {
	State   tcpState
	Unacked uint32 // tcpi_unacked: segments sent, not yet acknowledged
	NotSent uint32 // tcpi_notsent_bytes: queued, not yet sent
	SegsOut uint32 // tcpi_data_segs_out: data segments ever sent
	Acked   uint64 // tcpi_bytes_acked: bytes the peer ever acknowledged
	RTT     time.Duration
}

// marks record the socket when the peer was last known to read: when its
// FIN was seen, then whenever it acknowledged more data.
type marks struct {
	acked uint64 // tcpi_bytes_acked
	segs  uint32 // tcpi_data_segs_out minus segments then in flight
}

func marksOf(s sockInfo) marks { return marks{acked: s.Acked, segs: s.SegsOut - s.Unacked} }

// provoked reports whether data was sent since m, which an RST may answer.
func (m marks) provoked(s sockInfo) bool { return s.SegsOut != m.segs }

// verdict is what one look at TCP_INFO says about the peer.
type verdict uint8

const (
	vOpen     verdict = iota // ESTABLISHED: connected
	vFIN                     // CLOSE_WAIT, all acked, no ACK since: half or full close, unknown
	vInFlight                // CLOSE_WAIT, our data awaits the peer's ACK or RST
	vReading                 // CLOSE_WAIT, the peer acked data after its FIN
	vGone                    // CLOSE, or we are closing
)

// judge tells a half-close from a full close the only way TCP allows:
// after a FIN, a peer that merely shut down its sending side still ACKs
// our data, while a peer that closed its socket answers data with RST
// (RFC 9293 §3.10.7.4; Linux tcp_rcv_state_process, "abort on data").
// The FIN carried the peer's latest ACK, so any ACK after it (tcpi_bytes_acked
// above m.acked) proves the peer is reading, even while more is in flight.
func judge(s sockInfo, m marks) verdict {
	switch s.State {
	case tcpEstablished:
		return vOpen
	case tcpCloseWait:
		switch {
		case s.Acked != m.acked:
			return vReading
		case s.Unacked != 0 || s.NotSent != 0:
			return vInFlight
		default:
			return vFIN
		}
	default:
		return vGone
	}
}

// evidence is what is known about a connection that is gone.
type evidence struct {
	closed   bool  // TCP_INFO said TCP_CLOSE
	sockErr  error // SO_ERROR, read in TCP_CLOSE
	readErr  error // recorded by Listen's connection
	writeErr error // recorded by Listen's connection
	provoked bool  // we sent data after the peer's FIN, which an RST may answer
	cause    error // context.Cause of net/http's request context
}

// goneCause classifies a dead connection. Linux reports ECONNRESET for an
// RST on an open connection, EPIPE for an RST after the peer's FIN, and
// ETIMEDOUT when keepalive or TCP_USER_TIMEOUT gave up (tcp_reset,
// tcp_write_err). An RST after FIN is "closed" when our data provoked it
// and "reset" otherwise.
func goneCause(ev evidence) *GoneError {
	for _, err := range []error{ev.sockErr, ev.readErr, ev.writeErr} {
		switch {
		case errors.Is(err, syscall.ETIMEDOUT):
			return gone(ReasonTimeout, err)
		case errors.Is(err, syscall.ECONNRESET):
			return gone(ReasonReset, err)
		case errors.Is(err, syscall.EPIPE) && ev.provoked:
			return gone(ReasonClosed, err)
		case errors.Is(err, syscall.EPIPE) && ev.closed:
			return gone(ReasonReset, err)
		}
	}
	switch {
	case ev.closed && ev.provoked:
		return gone(ReasonClosed, ev.cause)
	case ev.closed:
		return gone(ReasonReset, ev.cause)
	case ev.writeErr != nil:
		return gone(ReasonWriteFailed, ev.writeErr)
	}
	return gone(ReasonCanceled, ev.cause)
}

// run classifies the end after net/http cancelled r.Context(), then keeps
// watching a half-closed peer until the handler returns.
func (wt *watcher) run() {
	t0 := time.Now()
	if wt.ci == nil {
		wt.end(gone(ReasonCanceled, context.Cause(wt.orig)), time.Since(t0))
		return
	}
	s, err := readSockInfo(wt.ci.rc)
	switch {
	case err == nil && s.State == tcpEstablished:
		// The peer is connected, so the cancellation came from the server
		// side (BaseContext, ReadTimeout): pass it on as net/http would.
		wt.end(context.Cause(wt.orig), time.Since(t0))
		return
	case err != nil || s.State != tcpCloseWait:
		wt.endGone(s, err, t0)
		return
	}
	// Segments still in flight count as sent after the FIN: an RST
	// answers them.
	wt.mark, wt.marked = marksOf(s), true
	if wt.verify(t0, s.RTT) {
		wt.monitor(s.RTT)
	}
}

// verify probes a peer that sent FIN and waits up to ProbeWait for the
// verdict. It reports whether to keep watching: false once the peer is gone
// or the handler returned. Without a way to probe it stays undecided and
// lets the handler's own writes be the probe.
func (wt *watcher) verify(t0 time.Time, rtt time.Duration) bool {
	deadline := time.Now().Add(wt.cfg.ProbeWait)
	delay := pollStart(rtt)
	probed := false
	for {
		s, err := readSockInfo(wt.ci.rc)
		if err != nil {
			wt.endGone(s, err, t0)
			return false
		}
		switch judge(s, wt.mark) {
		case vGone:
			wt.endGone(s, nil, t0)
			return false
		case vReading:
			wt.mark = marksOf(s)
			wt.setHalfClosed(time.Since(t0))
			return true
		case vFIN:
			if !probed {
				probed = true
				if !wt.rw.probe() {
					return true
				}
				// Look again at once: on loopback the peer's RST or ACK
				// is often processed before write(2) returns.
				continue
			}
		}
		if time.Now().After(deadline) {
			return true
		}
		if !wt.sleepUntil(time.Now().Add(delay)) {
			return false
		}
		delay = min(delay*2, 10*time.Millisecond)
	}
}

// monitor watches a peer that sent FIN but still reads (or could not be
// probed) until the handler returns. It polls TCP_INFO, soon after each
// handler write and then backing off to once a second, to see an RST; and
// it probes at 1, 2, 4... up to every maxProbeGap to see a later full
// close, which a peer's kernel only reveals by answering data with RST.
func (wt *watcher) monitor(rtt time.Duration) {
	gap, poll := time.Second, pollStart(rtt)
	now := time.Now()
	nextProbe, nextLook := now.Add(gap), now.Add(poll)
	for {
		kicked, ok := wt.wait(earliest(nextLook, nextProbe), wt.kick)
		if !ok {
			return
		}
		t0 := time.Now()
		if kicked {
			if soon := t0.Add(quickLook(rtt)); soon.Before(nextLook) {
				nextLook, poll = soon, quickLook(rtt)
			}
			continue
		}
		if !wt.look(t0) {
			return
		}
		poll = min(poll*2, time.Second)
		nextLook = t0.Add(poll)
		if t0.Before(nextProbe) {
			continue
		}
		if !wt.verify(t0, rtt) {
			return
		}
		gap = min(gap*2, maxProbeGap)
		nextProbe = time.Now().Add(gap)
	}
}

// look is one TCP_INFO poll of the monitor; it reports whether to go on.
func (wt *watcher) look(t0 time.Time) bool {
	s, err := readSockInfo(wt.ci.rc)
	if err != nil {
		wt.endGone(s, err, t0)
		return false
	}
	switch judge(s, wt.mark) {
	case vGone:
		wt.endGone(s, nil, t0)
		return false
	case vReading: // the handler's own data was acked
		wt.mark = marksOf(s)
		wt.setHalfClosed(time.Since(t0))
	}
	return true
}

// endGone classifies a dead connection and cancels the handler. lookErr is
// set when TCP_INFO failed: net/http closed the socket after a write error.
func (wt *watcher) endGone(s sockInfo, lookErr error, t0 time.Time) {
	ev := evidence{cause: context.Cause(wt.orig)}
	ev.readErr, ev.writeErr = wt.ci.errs()
	if lookErr == nil {
		ev.closed = s.State == tcpClose
		ev.provoked = wt.marked && wt.mark.provoked(s)
		if ev.closed {
			ev.sockErr = readSockErr(wt.ci.rc)
		}
	} else {
		ev.provoked = wt.marked
	}
	wt.end(goneCause(ev), time.Since(t0))
}

// sleepUntil waits for t or for the handler to return; it reports false
// in the latter case.
func (wt *watcher) sleepUntil(t time.Time) bool {
	_, ok := wt.wait(t, nil)
	return ok
}

// wait waits for t, a kick (if kick is not nil) or the handler's return.
// It reports whether a kick woke it, and false once the handler returned.
func (wt *watcher) wait(t time.Time, kick <-chan struct{}) (kicked, ok bool) {
	d := time.Until(t)
	if wt.timer == nil {
		wt.timer = time.NewTimer(d)
	} else {
		wt.timer.Reset(d) // Go >= 1.23: no stale tick after Reset
	}
	select {
	case <-wt.done:
		wt.timer.Stop()
		return false, false
	case <-kick:
		wt.timer.Stop()
		return true, true
	case <-wt.timer.C:
		return false, true
	}
}

// maxProbeGap caps the probe backoff; only fillers probe this late (the
// 1xx budget is spent by then), at a cost of a few bytes.
const maxProbeGap = 15 * time.Second

// pollStart is the first wait after a probe: a fraction of the smoothed
// RTT, so that loopback peers (RTT of tens of µs) are classified in well
// under a millisecond and distant ones are not polled in vain.
func pollStart(rtt time.Duration) time.Duration {
	return min(max(rtt/4, 20*time.Microsecond), 5*time.Millisecond)
}

// quickLook is how soon to look after the handler wrote: the data needs a
// round trip to be acked or answered with RST.
func quickLook(rtt time.Duration) time.Duration {
	return 2*rtt + time.Millisecond
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
