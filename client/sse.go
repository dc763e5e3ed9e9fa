package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-run/tether/wire"
)

// sseLink is the fallback link when the WebSocket upgrade is refused (a
// proxy that does not pass upgrades, say): one SSE stream per
// subscription (GET /v1/channels/{channel}/events, docs/api.md), HTTP
// POST for publishing. When SSE is blocked too (refused, or buffered so
// that nothing arrives: a probe stream at connect tells), it long-polls
// instead (GET /v1/channels/{channel}/messages?wait=), one poller per
// subscription. Each stream or poller resumes by cursor like a framed
// subscription; when any of them fails, the whole link ends, and the
// Client reconnects and resumes every subscription, as for a framed link.
//
// It owns one watchdog goroutine and one reader per stream or poller;
// done is closed once all of them returned.
type sseLink struct {
	c      *Client
	poll   bool            // long-poll, not SSE
	ctx    context.Context // ends when the link ends
	cancel context.CancelCauseFunc
	doneCh chan struct{}
	wg     sync.WaitGroup // the watchdog and the stream readers
	hintMS atomic.Int64   // reconnect_after_ms of a shutdown event, +1; 0: none

	mu      sync.Mutex
	killed  bool                  // guarded by mu
	err     error                 // guarded by mu
	streams map[string]*sseStream // guarded by mu; by channel
}

type sseStream struct {
	cancel   context.CancelFunc
	lastRecv atomic.Int64 // unix nanos
}

// sseProbeTimeout bounds the wait for a probe stream's first line.
const sseProbeTimeout = 5 * time.Second

// newSSELink checks that the server answers HTTP, probes whether SSE gets
// through (else it long-polls), and starts the link.
func newSSELink(ctx context.Context, c *Client) (*sseLink, error) {
	if _, err := doHTTP(ctx, c.cfg.HTTPClient, "GET", c.ep.http+"/healthz", nil, nil, nil); err != nil {
		return nil, err
	}
	poll := !probeSSE(ctx, c)
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	lctx, cancel := context.WithCancelCause(c.ctx)
	l := &sseLink{c: c, poll: poll, ctx: lctx, cancel: cancel, doneCh: make(chan struct{}), streams: map[string]*sseStream{}}
	l.wg.Add(1)
	go l.watch()
	go func() {
		<-lctx.Done()
		l.kill(context.Cause(lctx))
		l.wg.Wait()
		close(l.doneCh)
	}()
	return l, nil
}

// probeSSE reports whether an SSE stream gets through: its head and first
// line (the server's "retry:") arrive within sseProbeTimeout. A proxy may
// refuse it, or buffer it so that nothing arrives.
func probeSSE(ctx context.Context, c *Client) bool {
	ctx, cancel := context.WithTimeout(ctx, sseProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", c.ep.http+"/v1/channels/tether.probe/events", nil)
	if err != nil {
		return false
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	_, err = bufio.NewReader(resp.Body).ReadSlice('\n')
	return err == nil
}

func (l *sseLink) transport() string {
	if l.poll {
		return TransportLongPoll
	}
	return TransportSSE
}
func (l *sseLink) done() <-chan struct{} { return l.doneCh }

func (l *sseLink) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *sseLink) hint() (time.Duration, bool) {
	h := l.hintMS.Load()
	return time.Duration(h-1) * time.Millisecond, h > 0
}

func (l *sseLink) leave() {
	l.kill(ErrClosed)
	<-l.doneCh
}

// kill ends the link for err (the first err is kept).
func (l *sseLink) kill(err error) {
	l.mu.Lock()
	if !l.killed {
		l.killed = true
		l.err = err
	}
	l.mu.Unlock()
	l.cancel(err)
}

// watch ends the link when a stream was silent past the SSE heartbeat
// timeout: the server sends a comment every --sse-heartbeat while idle.
func (l *sseLink) watch() {
	defer l.wg.Done()
	hb := l.c.cfg.SSEHeartbeatTimeout
	t := time.NewTicker(hb / 8)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		for _, s := range l.streams {
			if time.Since(time.Unix(0, s.lastRecv.Load())) > hb {
				l.mu.Unlock()
				l.kill(ErrHeartbeatTimeout)
				return
			}
		}
		l.mu.Unlock()
	}
}

func (l *sseLink) channelURL(channel, suffix string) string {
	return l.c.ep.http + "/v1/channels/" + url.PathEscape(channel) + suffix
}

func (l *sseLink) subscribe(ctx context.Context, channel string, after *string) (string, error) {
	hc := l.c.cfg.HTTPClient
	if after == nil {
		// SSE without a cursor starts "from now" without telling where
		// that is; a resume needs it, so ask the long-poll route first.
		var page struct {
			Next string `json:"next"`
		}
		if _, err := doHTTP(ctx, hc, "GET", l.channelURL(channel, "/messages?wait=0&limit=1"), nil, nil, &page); err != nil {
			return "", l.httpFailed(err)
		}
		after = &page.Next
	}
	if l.poll {
		return l.startPoll(ctx, channel, *after)
	}
	sctx, cancel := context.WithCancel(l.ctx)
	req, err := http.NewRequestWithContext(sctx, "GET", l.channelURL(channel, "/events?after="+url.QueryEscape(*after)), nil)
	if err != nil {
		cancel()
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	stop := context.AfterFunc(ctx, cancel) // until the answer's head came
	resp, err := hc.Do(req)
	if !stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return "", context.Cause(ctx)
	}
	if err != nil {
		cancel()
		return "", l.httpFailed(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
		resp.Body.Close()
		cancel()
		return "", statusError(resp, b)
	}
	s := &sseStream{cancel: cancel}
	s.lastRecv.Store(time.Now().UnixNano())
	err = l.runStream(channel, s, "SSE stream", func() error {
		defer resp.Body.Close()
		return l.read(channel, s, resp.Body)
	})
	if err != nil {
		resp.Body.Close()
		cancel()
		return "", err
	}
	return *after, nil
}

// httpFailed: a request got no answer; the server is likely gone, so the
// link ends (and the client reconnects).
func (l *sseLink) httpFailed(err error) error {
	var ef *wire.ErrorFrame
	if errors.As(err, &ef) || l.ctx.Err() != nil {
		return err
	}
	l.kill(err)
	return fmt.Errorf("%w: %w", ErrConnLost, err)
}

func (l *sseLink) unsubscribe(ctx context.Context, channel string) error {
	l.mu.Lock()
	s := l.streams[channel]
	delete(l.streams, channel)
	l.mu.Unlock()
	if s == nil {
		return &wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeNotSubscribed, Message: "not subscribed"}
	}
	s.cancel()
	return nil
}

func (l *sseLink) publish(ctx context.Context, channel string, data json.RawMessage, key string) (wire.Reply, error) {
	var ans struct {
		ID string `json:"id"`
	}
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	resp, err := doHTTP(ctx, l.c.cfg.HTTPClient, "POST", l.channelURL(channel, "/messages"), h, data, &ans)
	if err != nil {
		return wire.Reply{}, l.httpFailed(err)
	}
	return wire.Reply{Type: wire.TypeReply, OK: true, Cursor: ans.ID, Duplicate: resp.Header.Get("Idempotent-Replayed") == "true"}, nil
}

// read parses channel's event stream until it ends.
func (l *sseLink) read(channel string, s *sseStream, body io.Reader) error {
	return parseSSE(body, func() { s.lastRecv.Store(time.Now().UnixNano()) },
		func(event, id string, data []byte) error { return l.dispatch(channel, event, id, data) })
}

// parseSSE reads an event stream (the WHATWG EventSource format, as
// docs/api.md writes it) until it ends or emit fails: line is called for
// every line read (comments, the heartbeat, included), emit for every
// event, with its data lines joined by "\n". A line longer than maxFrame
// is an error. It never returns nil: io.ErrUnexpectedEOF at the end.
func parseSSE(body io.Reader, line func(), emit func(event, id string, data []byte) error) error {
	br := bufio.NewReaderSize(body, 64<<10)
	var id, event string
	var data []byte
	for {
		ln, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			buf := append([]byte(nil), ln...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(buf) > maxFrame {
					return errors.New("tether: client: SSE line too long")
				}
				ln, err = br.ReadSlice('\n')
				buf = append(buf, ln...)
			}
			ln = buf
		}
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line()
		ln = bytes.TrimSuffix(bytes.TrimSuffix(ln, []byte("\n")), []byte("\r"))
		if len(ln) == 0 {
			if data != nil || event != "" {
				if err := emit(event, id, data); err != nil {
					return err
				}
			}
			id, event, data = "", "", nil
			continue
		}
		if ln[0] == ':' {
			continue // a comment: the heartbeat, or a departure probe
		}
		field, value, _ := bytes.Cut(ln, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			id = string(value)
		case "event":
			event = string(value)
		case "data":
			if data != nil {
				data = append(data, '\n')
			} else {
				data = []byte{}
			}
			data = append(data, value...)
		}
	}
}

func (l *sseLink) dispatch(channel, event, id string, data []byte) error {
	switch event {
	case "", "message":
		l.c.message(l, wire.Message{Type: wire.TypeMessage, Channel: channel, Cursor: id, Data: json.RawMessage(data)})
	case "gap":
		var g wire.Gap
		if err := json.Unmarshal(data, &g); err != nil {
			return fmt.Errorf("bad gap event: %w", err)
		}
		g.Type, g.Channel = wire.TypeGap, channel
		l.c.gap(l, g)
	case "shutdown":
		var sd wire.Shutdown
		json.Unmarshal(data, &sd)
		l.hintMS.CompareAndSwap(0, sd.ReconnectAfterMS+1)
		l.kill(ErrServerShutdown)
		return ErrServerShutdown
	}
	return nil
}

// runStream makes s channel's stream (ending the one it replaces) and runs
// body on a goroutine of the link. When body returns while s is still the
// channel's stream, the channel was not unsubscribed: the link is broken
// and ends. It returns ErrConnLost, starting nothing, once the link is
// dead.
func (l *sseLink) runStream(channel string, s *sseStream, what string, body func() error) error {
	l.mu.Lock()
	if l.killed {
		l.mu.Unlock()
		return ErrConnLost
	}
	if old := l.streams[channel]; old != nil {
		old.cancel()
	}
	l.streams[channel] = s
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		err := body()
		l.mu.Lock()
		mine := l.streams[channel] == s
		if mine {
			delete(l.streams, channel)
		}
		l.mu.Unlock()
		if mine {
			l.kill(fmt.Errorf("tether: client: %s of %s: %w", what, channel, err))
		}
	}()
	return nil
}
