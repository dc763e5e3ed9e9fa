package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"

	"github.com/tether-run/tether/wire"
)

// pollWait is how long one long-poll waits for messages (the server's
// default; at most its --wait-max, 2m by default).
const pollWait = 25 * time.Second

// pollPage is a long-poll answer (docs/api.md, "Long-poll").
type pollPage struct {
	Messages []struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
		Time time.Time       `json:"time"`
	} `json:"messages"`
	Next             string `json:"next"`
	Gap              bool   `json:"gap"`
	Earliest         string `json:"earliest"`
	ReconnectAfterMS *int64 `json:"reconnect_after_ms"`
}

// startPoll subscribes channel by long-polling after the cursor: a first
// poll that does not wait (so that a refused channel or cursor is
// Subscribe's error), then a poller goroutine.
func (l *sseLink) startPoll(ctx context.Context, channel, after string) (string, error) {
	s := &sseStream{}
	s.lastRecv.Store(time.Now().UnixNano())
	next, err := l.pollOnce(ctx, channel, after, 0)
	if err != nil {
		return "", l.httpFailed(err)
	}
	pctx, cancel := context.WithCancel(l.ctx)
	s.cancel = cancel
	err = l.runStream(channel, s, "long-poll", func() error { return l.pollLoop(pctx, channel, next, s) })
	if err != nil {
		cancel()
		return "", err
	}
	return after, nil
}

func (l *sseLink) pollLoop(ctx context.Context, channel, after string, s *sseStream) error {
	for {
		next, err := l.pollOnce(ctx, channel, after, pollWait)
		if err != nil {
			return err
		}
		s.lastRecv.Store(time.Now().UnixNano())
		after = next
	}
}

// pollOnce reads channel after the cursor, waiting up to wait, hands what
// came to the client, and returns the cursor to poll after next. A
// shutdown hint ends the link.
func (l *sseLink) pollOnce(ctx context.Context, channel, after string, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+l.c.cfg.RequestTimeout)
	defer cancel()
	var p pollPage
	u := l.channelURL(channel, "/messages?limit=1000&after="+url.QueryEscape(after)+"&wait="+wait.String())
	if _, err := doHTTP(ctx, l.c.cfg.HTTPClient, "GET", u, nil, nil, &p); err != nil {
		return "", err
	}
	if p.Gap {
		l.c.gap(l, wire.Gap{Type: wire.TypeGap, Channel: channel, After: after, Earliest: p.Earliest})
	}
	for _, m := range p.Messages {
		l.c.message(l, wire.Message{Type: wire.TypeMessage, Channel: channel, Cursor: m.ID, Data: m.Data, Time: m.Time})
	}
	if p.ReconnectAfterMS != nil {
		l.hintMS.CompareAndSwap(0, *p.ReconnectAfterMS+1)
		l.kill(ErrServerShutdown)
		return "", ErrServerShutdown
	}
	if p.Next != "" {
		after = p.Next
	}
	return after, nil
}
