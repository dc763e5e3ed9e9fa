package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// feed is one subscriber of one channel, on any transport: next returns
// the next received message that may carry a payload (valid until the
// next call), and close ends the subscription so that next fails.
type feed interface {
	next() ([]byte, error)
	close()
}

// openFeed subscribes to ch on in over transport tr, for as long as ctx
// lasts (a WebSocket or TCP handshake gets 30 s); when it returns, the
// server has the subscription (tether replied to subscribe, or answered
// the stream's or the poll's headers), or counts it soon after (a
// long-poll request is sent). SSE and long-poll start from the oldest
// message of the channel, so a message published at once is not missed.
func openFeed(ctx context.Context, in *instance, tr, ch string, d *dialer, hc *http.Client) (feed, error) {
	switch tr {
	case "websocket", "tcp":
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if tr == "tcp" {
			return dialTCP(dctx, in.sys, in.tcpAddr, ch, d)
		}
		return dialWS(dctx, in.sys, in.addr, ch, d)
	case "sse":
		s, err := openSSE(ctx, d, in.sys, in.addr, ch, "", true)
		if err != nil {
			return nil, err
		}
		return sseFeed{s}, nil
	case "long-poll":
		return newPollFeed(ctx, hc, in.sys, in.addr, ch)
	}
	return nil, fmt.Errorf("bench: unknown transport %q", tr)
}

// transportSystems are the systems that serve transport tr, among all.
func transportSystems(tr string) []System {
	switch tr {
	case "websocket":
		return []System{Tether, TetherBefore, Nchan, SocketIO, Centrifugo}
	case "sse":
		return []System{Tether, TetherBefore, Nchan, Centrifugo}
	case "long-poll":
		return []System{Tether, TetherBefore, Nchan}
	}
	return []System{Tether, TetherBefore} // tcp
}

func (s *wsSub) close() { s.closeNow() }

// sseFeed is a feed over an SSE stream.
type sseFeed struct{ s *sseStream }

func (f sseFeed) next() ([]byte, error) {
	ev, err := f.s.message()
	return ev.data, err
}

func (f sseFeed) close() { f.s.close() }

// pollFeed is a feed over long-poll requests, one after another: tether's
// GET /v1/channels/<ch>/messages?after=<next> (a page of messages per
// answer), or Nchan's long-poll subscriber (one message per answer, the
// next request naming the last with If-Modified-Since and If-None-Match).
type pollFeed struct {
	ctx    context.Context
	cancel context.CancelFunc
	c      *http.Client
	sys    System
	base   string    // the URL without the cursor
	after  string    // tether: the cursor of the next poll
	since  [2]string // Nchan: Last-Modified and Etag of the last answer
	queue  [][]byte  // messages of the last answer not yet returned
}

func newPollFeed(ctx context.Context, c *http.Client, sys System, addr, ch string) (*pollFeed, error) {
	f := &pollFeed{c: c, sys: sys}
	f.ctx, f.cancel = context.WithCancel(ctx)
	switch sys.kind() {
	case Tether:
		f.base = "http://" + addr + "/v1/channels/" + url.PathEscape(ch) + "/messages?wait=120s&limit=1000&after="
		f.after = "0"
	case Nchan:
		f.base = "http://" + addr + "/sub/" + url.PathEscape(ch)
	default:
		f.cancel()
		return nil, fmt.Errorf("bench: %s has no long-poll", sys)
	}
	return f, nil
}

func (f *pollFeed) close() { f.cancel() }

func (f *pollFeed) next() ([]byte, error) {
	for len(f.queue) == 0 {
		if err := f.poll(); err != nil {
			return nil, err
		}
	}
	m := f.queue[0]
	f.queue = f.queue[1:]
	return m, nil
}

// poll sends one long-poll request and queues what it answers.
func (f *pollFeed) poll() error {
	u := f.base
	if f.sys.kind() == Tether {
		u += url.QueryEscape(f.after)
	}
	req, err := http.NewRequestWithContext(f.ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	if f.sys.kind() == Nchan && f.since[0] != "" {
		req.Header.Set("If-Modified-Since", f.since[0])
		req.Header.Set("If-None-Match", f.since[1])
	}
	res, err := f.c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if f.sys.kind() == Nchan {
		return f.nchanAnswer(res)
	}
	if res.StatusCode != 200 {
		io.Copy(io.Discard, res.Body)
		return fmt.Errorf("bench: long-poll: %s", res.Status)
	}
	var page struct {
		Messages []struct {
			Data json.RawMessage `json:"data"`
		} `json:"messages"`
		Next string `json:"next"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
		return fmt.Errorf("bench: long-poll: %w", err)
	}
	for _, m := range page.Messages {
		f.queue = append(f.queue, m.Data)
	}
	if page.Next != "" {
		f.after = page.Next
	}
	return nil
}

// nchanAnswer queues the one message of an Nchan long-poll answer; a
// timeout answer (304 or 408) queues nothing.
func (f *pollFeed) nchanAnswer(res *http.Response) error {
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case 200:
		f.since = [2]string{res.Header.Get("Last-Modified"), res.Header.Get("Etag")}
		f.queue = append(f.queue, b)
		return nil
	case 304, 408:
		return nil
	}
	return fmt.Errorf("bench: nchan long-poll: %s", res.Status)
}
