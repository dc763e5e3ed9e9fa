package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// wireMessage is a message as clients see it.
type wireMessage struct {
	ID   store.Cursor    `json:"id"`
	Data json.RawMessage `json:"data"`
	Time time.Time       `json:"time"`
}

// pollResponse is the long-poll answer. An answer with no messages and the
// same next is the keepalive: "nothing yet, poll again".
type pollResponse struct {
	Messages []wireMessage `json:"messages"`
	Next     store.Cursor  `json:"next"`
	Gap      bool          `json:"gap,omitempty"`
	Earliest store.Cursor  `json:"earliest,omitempty"`
	// ReconnectAfterMS is set when the server is going away: poll again
	// after this long (0 included), to spread the reconnects.
	ReconnectAfterMS *int64 `json:"reconnect_after_ms,omitempty"`
}

// poll serves GET /v1/channels/{channel}/messages: a long-poll read after a
// cursor. It answers at once when there is something to say (messages or a
// gap) and otherwise waits up to wait for the next message.
//
// The long-poll is a session of the core that answers once: its reads are
// shared with every subscriber of the channel (and its answer encoded once
// per page), the Registry lists it and may end it (an operator's close,
// a shutdown: both answer the keepalive). Over HTTP/1.1 through a
// Listener a long-poll that must wait is parked on its hijacked
// connection (parkPoll) and holds no goroutine; otherwise it waits on
// the handler's goroutine, and the request's context is conn.Watch's: it
// ends only when the client is really gone (closed or reset, not
// half-closed). Reading never consumes, so a client that vanished before
// this answer reached it gets the same messages again with the same
// cursor.
func (a *API) poll(w http.ResponseWriter, r *http.Request) {
	p, e := decodeRead(r.PathValue("channel"), r.URL.Query(), "", a.limits)
	if e != nil {
		writeError(w, e)
		return
	}
	pr := a.authenticate(w, r)
	if pr == nil {
		return
	}
	ctx := r.Context()
	nc := conn.NetConn(ctx)
	s, err := a.core.OpenPoll(ctx, pr, registry.OpenInfo{Transport: registry.TransportLongPoll, Remote: r.RemoteAddr, Conn: nc})
	if !admitted(w, ctx, s, err) {
		return
	}
	ans, wait, err := s.PollNow(session.PollRequest{
		Channel: p.channel, After: p.cursorArg(), Limit: p.limit, Wait: p.wait,
		Format: pollPages{}, Waiting: a.metrics.waitingPoll,
	})
	if wait != nil {
		if a.parkPoll(w, r, s, wait) {
			return // answered on the hijacked connection, later
		}
		ans, err = wait.Wait(ctx)
	}
	a.answerPoll(w, s, ans, err, ctx.Err() != nil, func(err error) { a.writeStoreError(w, r, err) })
}

// answerPoll answers a long-poll's outcome on w; gone says its client
// left (nothing is answered then); storeErr answers a store's error.
func (a *API) answerPoll(w http.ResponseWriter, s *session.Session, ans session.PollAnswer, err error, gone bool, storeErr func(error)) {
	end, serverEnded := s.ServerEnded()
	switch {
	case ans.Body != nil:
		s.Wrote(writeBody(w, http.StatusOK, ans.Body))
	case err == nil:
		// The wait ran out, or the server ends the request (shutdown, or
		// an operator's graceful close): answer the keepalive so the
		// client polls again, here or on this server's successor.
		if end.Closed {
			w.Header().Set("Connection", "close")
		}
		keep := pollAnswer(ans.After, store.ReadResult{})
		if serverEnded && end.Reason == conn.ReasonShutdown {
			hint := end.ReconnectAfter.Milliseconds()
			keep.ReconnectAfterMS = &hint
		}
		writeJSON(w, http.StatusOK, keep)
	case denied(err):
		writeDenied(w, err)
	case serverEnded:
		writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping"))
	case gone:
		// the client is gone; Watch (or the parked poll's watch) logs why
	default:
		storeErr(err)
	}
}

// pollPages encodes a long-poll answer from a page; the session core keeps
// one encoding per page for every long-poll that reads it.
type pollPages struct{}

func (pollPages) EncodePage(after store.Cursor, res store.ReadResult) []byte {
	b, err := json.Marshal(pollAnswer(after, res))
	if err != nil {
		panic("tether: httpapi: encoding a page: " + err.Error()) // raw JSON validated on the way in, cursors, times
	}
	return append(b, '\n')
}

func pollAnswer(after store.Cursor, res store.ReadResult) pollResponse {
	out := pollResponse{Messages: make([]wireMessage, len(res.Messages)), Next: res.Next, Gap: res.Gap}
	for i, m := range res.Messages {
		out.Messages[i] = wireMessage{ID: m.ID, Data: m.Data, Time: m.Time.UTC()}
	}
	if out.Next == "" {
		out.Next = after
	}
	if res.Gap {
		// When nothing remains after the cursor, Next is already past the
		// hole (the store's contract), so the gap is reported once.
		out.Earliest = res.Earliest
	}
	return out
}

// storeError maps the seam's errors to API errors.
func (a *API) storeError(err error) *apiError {
	switch {
	case errors.Is(err, store.ErrBadCursor):
		return errorf(http.StatusBadRequest, CodeBadCursor, "the cursor was not issued by this server")
	case errors.Is(err, store.ErrCursorAhead):
		return errorf(http.StatusBadRequest, CodeCursorAhead,
			"the cursor is ahead of the channel: it was issued for other data; resume with after=0")
	case errors.Is(err, store.ErrBadChannel):
		return errorf(http.StatusBadRequest, CodeBadChannel, "bad channel name")
	case errors.Is(err, store.ErrClosed):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping")
	case errors.Is(err, store.ErrNoSpace):
		return errorf(http.StatusInsufficientStorage, CodeStorageFull,
			"the server's storage is full: appends are refused until space returns; reads go on")
	default:
		return errorf(http.StatusInternalServerError, CodeInternal, "storage failed")
	}
}

// writeStoreError answers a storage error, or nothing when the error is only
// the request's context ending because its client left.
func (a *API) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	e := a.storeError(err)
	switch e.Code {
	case CodeInternal:
		a.log.ErrorContext(r.Context(), "storage failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case CodeStorageFull:
		w.Header().Set("Retry-After", "5")
	}
	writeError(w, e)
}

// admitted answers an HTTP session the core refused (a denial with its
// code; anything else as the server stopping) and reports false; an
// admitted one goes to Watch's OnEnd, which finishes it.
func admitted(w http.ResponseWriter, ctx context.Context, s *session.Session, err error) bool {
	if denied(err) {
		writeDenied(w, err)
		return false
	}
	if err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping"))
		return false
	}
	if slot := slotFrom(ctx); slot != nil {
		slot.sess = s // Watch's OnEnd finishes it
	}
	return true
}

// cursorArg is the cursor the request reads after, for the session core:
// nil means after the channel's latest message.
func (p readParams) cursorArg() *string {
	if p.fromLatest {
		return nil
	}
	c := string(p.after)
	return &c
}
