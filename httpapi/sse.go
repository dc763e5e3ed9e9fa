package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/internal/framebuf"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// sseFiller is an SSE comment line: EventSource ignores it, so conn.Watch
// may write it at any point between events to probe a half-closed client.
var sseFiller = []byte(":\n")

// events serves GET /v1/channels/{channel}/events as Server-Sent Events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html). Each
// message is one event whose id: is its cursor, so an EventSource that
// reconnects sends Last-Event-ID and resumes exactly where it stopped.
// Trimmed history is announced in-band with "event: gap".
//
// The stream is a session of the core: its subscription shares reads and
// encodings with every other subscriber of the channel, and the core's
// queue, lag limit (slow-consumer), stall guard, heartbeats and shutdown
// notice apply. This handler only frames events (sseFormat) and reads
// nothing from the client; the client's departure is conn.Watch's.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	p, e := decodeRead(r.PathValue("channel"), r.URL.Query(), r.Header.Get("Last-Event-ID"), a.limits)
	if e != nil {
		writeError(w, e)
		return
	}
	pr := a.authenticate(w, r)
	if pr == nil {
		return
	}
	ctx := r.Context()
	t := &sseTransport{w: w, rc: http.NewResponseController(w), nc: conn.NetConn(ctx)}
	oi := registry.OpenInfo{Transport: registry.TransportSSE, Remote: r.RemoteAddr, Conn: t.nc}
	s, err := a.core.OpenStream(ctx, t, pr, oi)
	if !admitted(w, ctx, s, err) {
		return
	}
	after := p.cursorArg()
	err = s.Stream(p.channel, after, session.StreamOptions{
		Heartbeat: a.sseHeartbeat,
		Waiting:   a.metrics.waitingEvents,
		Begin:     func() (int, error) { return t.begin(a.sseRetry) },
		Presence:  r.URL.Query().Get("presence") == "1",
	})
	var ef *wire.ErrorFrame
	if _, ended := s.ServerEnded(); denied(err) {
		writeDenied(w, err)
	} else if errors.As(err, &ef) {
		writeError(w, errorf(http.StatusTooManyRequests, string(ef.Code), ef.Message))
	} else if err != nil && ended {
		writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping"))
	} else if err != nil {
		a.writeStoreError(w, r, err)
	}
}

// sseTransport frames the core's events as text/event-stream. Events are
// gathered in buf and handed to the ResponseWriter in one Write and one
// Flush per wake-up of the writer, so that conn.Watch's probe (a comment
// line) can only ever land between whole events. buf borrows its buffer
// from a pool only while events are pending. Used by the handler's
// goroutine only (the core's writer).
type sseTransport struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	nc  net.Conn // nil when the request did not come through conn.ConnContext
	buf framebuf.Batch
}

// begin commits the response: headers, and the reconnection delay for
// EventSource.
func (t *sseTransport) begin(retry time.Duration) (int, error) {
	h := t.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer the stream
	conn.SetFiller(t.w, sseFiller)
	t.w.WriteHeader(http.StatusOK)
	t.buf.Write([]byte("retry: " + strconv.Itoa(int(retry/time.Millisecond)) + "\n\n"))
	n := t.buf.Len()
	return n, t.flush()
}

func (t *sseTransport) Format() session.Format { return sseFormat{} }

func (t *sseTransport) WriteFrame(_ context.Context, frame []byte, flush bool) error {
	t.buf.Write(frame)
	if flush || t.buf.Len() >= framebuf.FlushAt {
		return t.flush()
	}
	return nil
}

func (t *sseTransport) flush() error {
	if t.buf.Len() == 0 {
		return nil
	}
	if err := t.buf.Flush(t.w); err != nil {
		return err
	}
	return t.rc.Flush()
}

// CloseGracefully: the response ends when the handler returns.
func (t *sseTransport) CloseGracefully(conn.Reason) error { return nil }
func (t *sseTransport) Close() error                      { return nil }
func (t *sseTransport) NetConn() net.Conn                 { return t.nc }
func (t *sseTransport) Reason(err error) conn.Reason      { return session.ReasonOf(err) }

// sseFormat writes the core's events as SSE. Messages are events whose id
// is the cursor; a gap and the shutdown notice are named events without an
// id (the client's Last-Event-ID must stay a real message's cursor); the
// heartbeat is a comment. Replies and errors have no SSE form.
type sseFormat struct{}

func (sseFormat) Encode(ev any) []byte {
	var b []byte
	switch ev := ev.(type) {
	case wire.Message:
		b = append(b, "id: "...)
		b = append(b, ev.Cursor...)
		b = append(b, "\ndata: "...)
		b = append(b, ev.Data...) // compact JSON: no raw newlines
	case wire.Gap:
		gap, _ := json.Marshal(struct {
			After    store.Cursor `json:"after"`
			Earliest store.Cursor `json:"earliest"`
		}{store.Cursor(ev.After), store.Cursor(ev.Earliest)})
		b = append(b, "event: gap\ndata: "...)
		b = append(b, gap...)
	case wire.Ping:
		b = append(b, ": heartbeat"...)
	case wire.Presence:
		ev.Type = ""
		data, _ := json.Marshal(ev)
		b = append(b, "event: presence\ndata: "...)
		b = append(b, data...)
	case wire.ErrorFrame:
		if ev.Code != wire.CodeTokenExpired {
			return nil // other errors end the stream without an event
		}
		data, _ := json.Marshal(struct {
			Code    wire.Code `json:"code"`
			Message string    `json:"message"`
		}{ev.Code, ev.Message})
		b = append(b, "event: error\ndata: "...)
		b = append(b, data...)
	case wire.Shutdown:
		b = append(b, `event: shutdown`+"\n"+`data: {"reconnect_after_ms":`...)
		b = strconv.AppendInt(b, ev.ReconnectAfterMS, 10)
		b = append(b, '}')
	default:
		return nil
	}
	return append(b, "\n\n"...)
}
