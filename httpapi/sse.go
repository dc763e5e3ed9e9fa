package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/store"
)

// sseFiller is an SSE comment line: EventSource ignores it, so conn.Watch
// may write it at any point between events to probe a half-closed client.
var sseFiller = []byte(":\n")

// events serves GET /v1/channels/{channel}/events as Server-Sent Events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html). Each
// message is one event whose id: is its cursor, so an EventSource that
// reconnects sends Last-Event-ID and resumes exactly where it stopped.
// Trimmed history is announced in-band with "event: gap".
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	p, res, ok := a.firstRead(w, r, r.Header.Get("Last-Event-ID"))
	if !ok {
		return
	}
	ctx := r.Context()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer the stream
	conn.SetFiller(w, sseFiller)
	w.WriteHeader(http.StatusOK)
	stall, stop := a.watchStall(ctx)
	defer stop()
	s := &sseStream{w: w, rc: http.NewResponseController(w), stall: stall, count: counter(ctx)}
	s.bw.WriteString("retry: " + strconv.Itoa(int(a.sseRetry/time.Millisecond)) + "\n\n")
	unfollow := a.followJob(ctx, p.channel)
	err := a.stream(ctx, s, p, res)
	unfollow(err)
	if err != nil && ctx.Err() == nil {
		a.log.DebugContext(ctx, "sse stream ended", "channel", p.channel, "err", err)
	}
}

// stream writes events until the client leaves, the server stops, or a write
// fails. It owns no goroutine: it alternates between reading the log and
// waiting on it, writing a heartbeat comment whenever a wait runs out.
func (a *API) stream(ctx context.Context, s *sseStream, p readParams, res store.ReadResult) error {
	var err error
	for {
		if err := s.writeBatch(p.after, res); err != nil {
			return err
		}
		if res.Next != "" {
			p.after = res.Next
		}
		if len(res.Messages) < p.limit {
			if err := a.waitOrBeat(ctx, s, p); err != nil {
				return err
			}
		}
		res, err = a.store.Read(ctx, p.channel, p.after, p.limit)
		if err != nil {
			return s.end(ctx, err)
		}
	}
}

// waitOrBeat waits for a message after p.after, writing a heartbeat comment
// every interval so that proxies keep the stream open and a dead client is
// found by a failing write.
func (a *API) waitOrBeat(ctx context.Context, s *sseStream, p readParams) error {
	for {
		err := a.waitFor(ctx, a.metrics.waitingEvents, p, a.sseHeartbeat)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return s.end(ctx, err)
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		s.bw.WriteString(": heartbeat\n\n")
		if err := s.flush(); err != nil {
			return err
		}
	}
}

// sseStream is one open event stream. Events are gathered in buf and handed
// to the ResponseWriter in one Write per batch, so that conn.Watch's probe
// (a comment line) can only ever land between whole events. The first
// failing write or flush ends the stream.
type sseStream struct {
	w     http.ResponseWriter
	bw    bytes.Buffer
	rc    *http.ResponseController
	stall *stallWatch // nil: no stall watch
	count func(out int)
}

func (s *sseStream) writeBatch(after store.Cursor, res store.ReadResult) error {
	if res.Gap {
		// The gap event has no id: the client's Last-Event-ID must stay a
		// real message's cursor.
		gap, _ := json.Marshal(struct {
			After    store.Cursor `json:"after"`
			Earliest store.Cursor `json:"earliest"`
		}{after, res.Earliest})
		s.bw.WriteString("event: gap\ndata: ")
		s.bw.Write(gap)
		s.bw.WriteString("\n\n")
	}
	for _, m := range res.Messages {
		s.bw.WriteString("id: ")
		s.bw.WriteString(string(m.ID))
		s.bw.WriteString("\ndata: ")
		s.bw.Write(m.Data) // compact JSON: no raw newlines
		s.bw.WriteString("\n\n")
	}
	return s.flush()
}

func (s *sseStream) flush() error {
	s.stall.writeStarted()
	defer s.stall.writeDone()
	n, err := s.w.Write(s.bw.Bytes())
	s.bw.Reset()
	s.count(n)
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// end finishes the stream when ctx ended. A stopping server says so in-band
// so the client reconnects (to a successor) at once, with its cursor.
func (s *sseStream) end(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), conn.ErrShutdown) {
		s.bw.WriteString(`event: shutdown` + "\n" + `data: {"reconnect_after_ms":`)
		s.bw.WriteString(strconv.FormatInt(reconnectHint(ctx).Milliseconds(), 10))
		s.bw.WriteString("}\n\n")
		return s.flush()
	}
	return err
}
