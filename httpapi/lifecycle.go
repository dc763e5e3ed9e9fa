package httpapi

import (
	"context"
	"net/http"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/session"
)

// Long-polls and SSE streams are sessions of the session core like any
// other connection: each request is opened in the registry.Registry
// (Core.OpenPoll, Core.OpenStream), listed at GET /v1/connections, can be
// closed by an operator, is told of a shutdown, and ends with exactly one
// reason. conn.Watch decides that reason when the client leaves; the
// server's own decisions (kicked, shutdown, slow-consumer) win over
// Watch's "completed" because they are why the handler returned
// (Session.Finish).

// trackSlot carries a request's session from the handler (inside Watch)
// to Watch's OnEnd (outside it). Set once, on the handler's goroutine,
// before OnEnd reads it on the same goroutine.
type trackSlot struct {
	sess *session.Session
	// parked: the handler hijacked the connection of a long-poll that
	// waits (parkPoll), which records the end itself once it answers.
	parked bool
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

// endTracked records the end of the request's session, if it has one.
func endTracked(r *http.Request, e conn.End) {
	if slot := slotFrom(r.Context()); slot != nil && slot.sess != nil && !slot.parked {
		slot.sess.Finish(e)
	}
}
