package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/conn"
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
// The request's context is conn.Watch's: it ends only when the client is
// really gone (closed or reset, not half-closed) or the server is stopping.
// Reading never consumes, so a client that vanished before this answer
// reached it gets the same messages again with the same cursor.
func (a *API) poll(w http.ResponseWriter, r *http.Request) {
	p, res, ok := a.firstRead(w, r, "")
	if !ok {
		return
	}
	ctx := r.Context()
	if len(res.Messages) == 0 && !res.Gap && p.wait > 0 {
		var err error
		res, err = a.waitAndRead(ctx, p)
		if err != nil {
			if ctx.Err() != nil && !serverEnded(ctx) {
				return // the client is gone; Watch logs why
			}
			if ctx.Err() == nil {
				a.writeStoreError(w, r, err)
				return
			}
			// The server ends the request (shutdown, or an operator's
			// graceful close): answer the keepalive so the client polls
			// again, here or on this server's successor.
			if errors.Is(context.Cause(ctx), errAnswerAndClose) {
				w.Header().Set("Connection", "close")
			}
			ans := pollAnswer(p, store.ReadResult{Next: p.after})
			if errors.Is(context.Cause(ctx), conn.ErrShutdown) {
				hint := reconnectHint(ctx).Milliseconds()
				ans.ReconnectAfterMS = &hint
			}
			writeJSON(w, http.StatusOK, ans)
			return
		}
	}
	counter(ctx)(writeJSON(w, http.StatusOK, pollAnswer(p, res)))
}

// waitAndRead waits up to p.wait for a message after p.after and reads
// what arrived. A wait that runs out is not an error: it yields an empty
// result whose Next is p.after, the keepalive.
func (a *API) waitAndRead(ctx context.Context, p readParams) (store.ReadResult, error) {
	err := a.waitFor(ctx, a.metrics.waitingPoll, p, p.wait)
	switch {
	case err == nil:
		return a.store.Read(ctx, p.channel, p.after, p.limit)
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return store.ReadResult{Next: p.after}, nil
	default:
		return store.ReadResult{}, err
	}
}

// waitFor waits up to d for a message after p.after, counted in the
// route's waiting gauge. It returns the store's answer: nil, or
// context.DeadlineExceeded when d ran out, or ctx's end.
func (a *API) waitFor(ctx context.Context, waiting prometheus.Gauge, p readParams, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waiting.Inc()
	defer waiting.Dec()
	return a.store.Wait(wctx, p.channel, p.after)
}

// firstRead decodes a long-poll or SSE request and reads what is already
// there after its cursor. It answers the error itself (before anything was
// committed, so bad input is a clean 4xx) and then reports false.
func (a *API) firstRead(w http.ResponseWriter, r *http.Request, lastEventID string) (readParams, store.ReadResult, bool) {
	p, e := decodeRead(r.PathValue("channel"), r.URL.Query(), lastEventID, a.limits)
	if e != nil {
		writeError(w, e)
		return p, store.ReadResult{}, false
	}
	ctx := r.Context()
	if p.fromLatest {
		// No cursor: only what is published after this request.
		b, err := a.store.Bounds(ctx, p.channel)
		if err != nil {
			a.writeStoreError(w, r, err)
			return p, store.ReadResult{}, false
		}
		p.after = b.Latest
	}
	res, err := a.store.Read(ctx, p.channel, p.after, p.limit)
	if err != nil {
		a.writeStoreError(w, r, err)
		return p, store.ReadResult{}, false
	}
	return p, res, true
}

func pollAnswer(p readParams, res store.ReadResult) pollResponse {
	out := pollResponse{Messages: make([]wireMessage, len(res.Messages)), Next: res.Next, Gap: res.Gap}
	for i, m := range res.Messages {
		out.Messages[i] = wireMessage{ID: m.ID, Data: m.Data, Time: m.Time.UTC()}
	}
	if out.Next == "" {
		out.Next = p.after
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
	default:
		return errorf(http.StatusInternalServerError, CodeInternal, "storage failed")
	}
}

// writeStoreError answers a storage error, or nothing when the error is only
// the request's context ending because its client left.
func (a *API) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	if ctx := r.Context(); ctx.Err() != nil {
		if serverEnded(ctx) {
			writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping"))
		}
		return
	}
	e := a.storeError(err)
	if e.Code == CodeInternal {
		a.log.ErrorContext(r.Context(), "storage failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, e)
}
