package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
)

// Long-polls and SSE streams are connections of the lifecycle layer like
// any other: each request is Opened in the registry.Registry, listed at
// GET /v1/connections, can be closed by an operator, is told of a shutdown,
// and Ends with exactly one reason. Watch decides that reason when the
// client leaves; the Registry's own decisions (kicked, shutdown) win over
// Watch's "completed" because they are why the handler returned.

// errAnswerAndClose is wrapped into the cause of a request that the server
// ends gracefully: a long-poll answers its keepalive with Connection: close,
// an SSE stream ends after a last event.
var errAnswerAndClose = errors.New("tether: server ends the request")

// reqPeer is one long-poll or SSE request as the Registry sees it.
type reqPeer struct {
	cancel context.CancelCauseFunc
	nc     net.Conn // nil when the request did not come through conn.ConnContext

	mu        sync.Mutex
	reason    conn.Reason   // guarded by mu: set when the Registry ended the request
	reconnect time.Duration // guarded by mu: the shutdown hint
}

// Close implements registry.Peer. Graceful: the handler answers and returns.
// Reset and discard act on the socket at once, and the handler's context
// ends so that its work stops too.
func (p *reqPeer) Close(mode conn.CloseMode, reason conn.Reason) error {
	if !p.setReason(reason) {
		return nil
	}
	if mode == conn.CloseGraceful || p.nc == nil {
		p.cancel(&conn.GoneError{Reason: reason, Err: errAnswerAndClose})
		return nil
	}
	p.cancel(&conn.GoneError{Reason: reason})
	return conn.CloseConn(p.nc, mode)
}

// NotifyShutdown implements registry.Peer: the long-poll answers its keepalive,
// the SSE stream sends a shutdown event with the hint, and the request ends.
func (p *reqPeer) NotifyShutdown(reconnectAfter time.Duration) {
	p.mu.Lock()
	p.reconnect = reconnectAfter
	p.mu.Unlock()
	if p.setReason(conn.ReasonShutdown) {
		p.cancel(conn.ErrShutdown)
	}
}

// setReason records the Registry's reason; only the first one counts.
func (p *reqPeer) setReason(r conn.Reason) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reason != "" {
		return false
	}
	p.reason = r
	return true
}

func (p *reqPeer) state() (conn.Reason, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason, p.reconnect
}

// trackSlot carries a request's registry handle from the handler (inside
// Watch) to Watch's OnEnd (outside it). Set once, on the handler's
// goroutine, before OnEnd reads it on the same goroutine.
type trackSlot struct {
	h    *registry.Handle
	peer *reqPeer
	sess *session.Session // an SSE stream's session
}

type trackSlotKey struct{}

func slotFrom(ctx context.Context) *trackSlot {
	s, _ := ctx.Value(trackSlotKey{}).(*trackSlot)
	return s
}

// withSlot runs next with an empty trackSlot in the request context; it
// sits outside Watch.
func withSlot(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), trackSlotKey{}, &trackSlot{})))
	})
}

// track opens the request in the Registry before next runs, and gives next
// a context the Registry can end.
func (a *API) track(tr registry.Transport, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		slot := slotFrom(r.Context())
		if a.reg == nil || slot == nil {
			next(w, r)
			return
		}
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		p := &reqPeer{cancel: cancel, nc: conn.NetConn(ctx)}
		h, err := a.reg.Open(ctx, registry.OpenInfo{Transport: tr, Remote: r.RemoteAddr, Conn: p.nc}, p)
		if err != nil {
			writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping"))
			return
		}
		h.SetChannels([]string{r.PathValue("channel")})
		slot.h, slot.peer = h, p
		next(w, r.WithContext(ctx))
	}
}

// endTracked ends the request's registry entry with Watch's verdict, or
// with the Registry's own reason when it ended the request.
func endTracked(r *http.Request, e conn.End) {
	slot := slotFrom(r.Context())
	if slot != nil && slot.sess != nil {
		slot.sess.Finish(e)
		return
	}
	if slot == nil || slot.h == nil {
		return
	}
	// The server's own decision (kicked, shutdown, slow-consumer) is why
	// the handler returned, whatever Watch saw of the socket afterwards.
	reason := e.Reason
	if pr, _ := slot.peer.state(); pr != "" {
		reason = pr
	}
	slot.h.End(reason, e.Noticed)
}

// serverEnded reports whether ctx ended because the server ended the
// request (shutdown, or a graceful close by the Registry), so that the
// client is owed an answer.
func serverEnded(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return errors.Is(cause, conn.ErrShutdown) || errors.Is(cause, errAnswerAndClose)
}

// reconnectHint is the shutdown hint the Registry gave this request, if any.
func reconnectHint(ctx context.Context) time.Duration {
	if slot := slotFrom(ctx); slot != nil && slot.peer != nil {
		_, d := slot.peer.state()
		return d
	}
	return 0
}

// counter returns a function that adds bytes written to the request's
// registry entry (shown in GET /v1/connections), or a no-op.
func counter(ctx context.Context) func(out int) {
	if slot := slotFrom(ctx); slot != nil && slot.h != nil {
		return func(out int) { slot.h.Count(0, out) }
	}
	return func(int) {}
}
