package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
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
// notice apply. This handler only frames events (sseFormat). Over
// HTTP/1.1 through a Listener the stream is hijacked once it begins and
// holds no goroutine while idle (hijacked watches the client's
// departure); otherwise the handler's goroutine writes it and the
// client's departure is conn.Watch's.
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
	if l := listenerFrom(ctx); l != nil && r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
		t.hijack = r // HTTP/1.1: the stream is written on the raw connection
	}
	oi := registry.OpenInfo{Transport: registry.TransportSSE, Remote: r.RemoteAddr, Conn: t.nc}
	s, err := a.core.OpenStream(ctx, t, pr, oi)
	if !admitted(w, ctx, s, err) {
		return
	}
	t.s = s
	opt := session.StreamOptions{
		Heartbeat: a.sseHeartbeat,
		Waiting:   a.metrics.waitingEvents,
		Begin:     func() (int, error) { return t.begin(a.sseRetry) },
		Presence:  r.URL.Query().Get("presence") == "1",
	}
	if t.hijack != nil {
		// HTTP/1.1: the handler returns once the stream runs on its
		// hijacked connection; done finishes it.
		channel, remote := p.channel, r.RemoteAddr
		// A WaitGroup, not a channel: done's closure keeps it for the
		// stream's life, and it is waited on only when the hijack failed.
		var ended sync.WaitGroup
		ended.Add(1)
		err = s.StreamStart(p.channel, p.cursorArg(), opt, func() {
			if raw := t.raw.Load(); raw != nil {
				t.finish(a, raw, channel, remote)
			}
			ended.Done()
		})
		if err == nil && t.raw.Load() == nil {
			ended.Wait() // not hijacked after all: the stream went out on w
		}
	} else {
		err = s.Stream(p.channel, p.cursorArg(), opt)
	}
	if t.raw.Load() != nil {
		return // the stream goes on without this goroutine, or has ended
	}
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
	s   *session.Session

	// hijack is the request when the stream is to be written on the raw
	// connection (HTTP/1.1 through a Listener); begin clears it.
	hijack *http.Request
	// raw is the hijacked connection, once begin has hijacked it: events
	// go out in HTTP/1.1 chunks, and the client's departure is watched
	// without a goroutine (hijacked).
	// Set by the writer (begin); read by the wind-up too.
	raw      atomic.Pointer[hijacked]
	graceful atomic.Bool // CloseGracefully was called
}

// sseProbe is a chunk holding a comment line: a probe after the client's
// FIN that EventSource ignores.
var sseProbe = []byte("2\r\n:\n\r\n")

// begin commits the response: headers, and the reconnection delay for
// EventSource.
func (t *sseTransport) begin(retry time.Duration) (int, error) {
	if r := t.hijack; r != nil {
		t.hijack = nil
		if n, err, ok := t.beginRaw(r, retry); ok {
			return n, err
		}
	}
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
	if raw := t.raw.Load(); raw != nil {
		return t.buf.Flush(chunkWriter{raw})
	}
	if err := t.buf.Flush(t.w); err != nil {
		return err
	}
	return t.rc.Flush()
}

// CloseGracefully: the response ends when the handler returns. A
// hijacked stream's last chunk is written by the handler too (end), once
// the Registry has the session's end, as net/http's response ends only
// after the handler returned.
func (t *sseTransport) CloseGracefully(conn.Reason) error {
	t.graceful.Store(true)
	return nil
}

// Close closes a hijacked stream's connection, unless it is to end
// gracefully (end does it).
func (t *sseTransport) Close() error {
	raw := t.raw.Load()
	if raw == nil || t.graceful.Load() {
		return nil
	}
	raw.stop()
	return raw.c.Close()
}

// finish records a hijacked stream's end once the session has wound up
// (Watch saw nothing of the client after the hijack; the raw
// connection's watch did), then ends its response: the last chunk and a
// graceful close, or a plain close. The Registry has the end before the
// client sees the stream end, as when net/http ends it after the
// handler.
func (t *sseTransport) finish(a *API, raw *hijacked, channel, remote string) {
	e := raw.end()
	t.s.Finish(e)
	a.endedAs("events", channel, remote, context.Background(), e)
	raw.stop()
	if t.graceful.Load() && raw.write([]byte("0\r\n\r\n")) == nil {
		conn.CloseConn(raw.c, conn.CloseGraceful)
		return
	}
	raw.c.Close()
}

func (t *sseTransport) NetConn() net.Conn            { return t.nc }
func (t *sseTransport) Reason(err error) conn.Reason { return session.ReasonOf(err) }

// beginRaw hijacks the connection of r, writes the response's head and
// first chunk on it, and watches it for the client's departure. ok is
// false, with nothing done, when the connection cannot be hijacked.
func (t *sseTransport) beginRaw(r *http.Request, retry time.Duration) (n int, err error, ok bool) {
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h := t.w.Header().Clone() // the middlewares' (CORS, Vary)
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx-style proxies not to buffer the stream
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Transfer-Encoding", "chunked")
	h.Write(&head)
	head.WriteString("\r\n")
	c, _, err := t.rc.Hijack()
	if err != nil {
		return 0, nil, false
	}
	if slot := slotFrom(r.Context()); slot != nil {
		slot.parked = true // finish records the end (Watch sees nothing now)
	}
	t.s.Unwatch() // the request's context ends with the handler, not the stream
	t.w, t.rc = nil, nil
	// What the client sent (it should send nothing) is discarded.
	raw := &hijacked{c: c, probe: sseProbe, left: func(reason conn.Reason, _ time.Duration) { t.s.End(reason) }}
	first := "retry: " + strconv.Itoa(int(retry/time.Millisecond)) + "\n\n"
	head.WriteString(strconv.FormatInt(int64(len(first)), 16) + "\r\n" + first + "\r\n")
	werr := raw.write(head.Bytes())
	if err := raw.watch(nil); err != nil {
		t.s.Logger().Debug("sse: no readiness", "err", err)
	}
	t.raw.Store(raw)
	return len(first), werr, true
}

// chunkWriter writes each Write as one HTTP/1.1 chunk (RFC 9112 §7.1), in
// one write(2).
type chunkWriter struct{ h *hijacked }

func (w chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var size [18]byte
	hdr := append(strconv.AppendInt(size[:0], int64(len(p)), 16), '\r', '\n')
	if err := w.h.writeBuffers(net.Buffers{hdr, p, crlf}); err != nil {
		return 0, err
	}
	return len(p), nil
}

var crlf = []byte("\r\n")

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
