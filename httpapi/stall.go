package httpapi

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/conn"
)

// An SSE client that stops reading is a slow consumer, not a dead peer:
// its kernel keeps acknowledging with a zero window. Left alone, Linux
// (5.11 and later) aborts such a socket after TCP_USER_TIMEOUT as if it
// were silent, and the stream would end as "timeout" after 4 s. So while
// data waits in the socket, a stallWatch runs conn.StallGuard (which
// lifts TCP_USER_TIMEOUT while the peer advertises no window) and ends the
// stream with slow-consumer once the client has made no progress for
// SSEMaxLag: a write blocked that long, or the window closed that long.
// The client resumes with Last-Event-ID; nothing is dropped, since the
// stream reads the log at its own cursor.
type stallWatch struct {
	guard  *conn.StallGuard
	nc     net.Conn
	maxLag time.Duration
	peer   *reqPeer // nil when the request is not tracked

	writing atomic.Int64  // unix nanos when the write in progress began, 0 if none
	kick    chan struct{} // cap 1: a write happened; data may be waiting
	done    chan struct{}
	wg      sync.WaitGroup
}

// watchStall starts the stream's stall watch; stop ends it and waits for
// its goroutine. It returns a no-op without TCP_INFO or a lag bound.
func (a *API) watchStall(ctx context.Context) (*stallWatch, func()) {
	nc := conn.NetConn(ctx)
	guard := conn.NewStallGuard(nc)
	if guard == nil || a.sseMaxLag <= 0 {
		return nil, func() {}
	}
	w := &stallWatch{guard: guard, nc: nc, maxLag: a.sseMaxLag, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if slot := slotFrom(ctx); slot != nil {
		w.peer = slot.peer
	}
	w.wg.Go(w.run)
	return w, func() { close(w.done); w.wg.Wait() }
}

// writeStarted and writeDone bracket every write of the stream.
func (w *stallWatch) writeStarted() {
	if w == nil {
		return
	}
	w.writing.Store(time.Now().UnixNano())
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *stallWatch) writeDone() {
	if w != nil {
		w.writing.Store(0)
	}
}

// run is the watch's goroutine: idle until a write, then it checks the
// socket every guard interval until nothing waits in it.
func (w *stallWatch) run() {
	t := time.NewTicker(w.guard.Interval())
	defer t.Stop()
	var stalledSince time.Time
	pending := false
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
			pending = true
			continue
		case now := <-t.C:
			if !pending {
				continue
			}
			st, err := w.guard.Check()
			if err != nil {
				return
			}
			pending = st.Pending || w.writing.Load() != 0
			switch {
			case !st.Stalled:
				stalledSince = time.Time{}
			case stalledSince.IsZero():
				stalledSince = now
			}
			if w.behind(now, stalledSince) {
				w.end()
				return
			}
		}
	}
}

// behind reports whether the client has made no progress for maxLag.
func (w *stallWatch) behind(now, stalledSince time.Time) bool {
	if began := w.writing.Load(); began != 0 && now.Sub(time.Unix(0, began)) > w.maxLag {
		return true
	}
	return !stalledSince.IsZero() && now.Sub(stalledSince) > w.maxLag
}

// end resets the connection: a client that does not read would not take a
// graceful goodbye either.
func (w *stallWatch) end() {
	if w.peer != nil {
		_ = w.peer.Close(conn.CloseReset, conn.ReasonSlowConsumer)
		return
	}
	_ = conn.CloseConn(w.nc, conn.CloseReset)
}
