package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tether-run/tether/wire"
)

// PublishResult is a durable publish: the message's cursor on its channel.
type PublishResult struct {
	Channel string
	Cursor  string
	// Duplicate: the server had this idempotency key already (a retry
	// after a lost answer, or a key the caller reused) and appended
	// nothing; Cursor is the first append's.
	Duplicate bool
}

// PublishOption changes one Publish.
type PublishOption func(*pubItem)

// WithIdempotencyKey sets the publish's idempotency key (1-255 bytes of
// printable ASCII) instead of a fresh random one: a publish repeated with
// the same key within the server's dedup window (10 minutes by default)
// appends nothing and answers the first cursor. Use it to retry a Publish
// whose ctx ended after it was sent, or across restarts of the
// application.
func WithIdempotencyKey(key string) PublishOption {
	return func(it *pubItem) { it.key = key }
}

// pubItem is one publish in the outbox.
type pubItem struct {
	channel string
	data    json.RawMessage
	key     string
	done    chan struct{} // closed by finishLocked

	// guarded by Client.mu:
	finished bool
	res      PublishResult
	err      error
}

func (it *pubItem) finishLocked(res PublishResult, err error) {
	if it.finished {
		return
	}
	it.finished = true
	it.res, it.err = res, err
	close(it.done)
}

// Publish appends data (marshalled to JSON; a json.RawMessage is sent as
// is) to channel and returns its cursor once the server has it durably.
//
// Each call carries an idempotency key (random, or WithIdempotencyKey), so
// the client retries it across reconnects without ever appending it twice.
// While the client is offline the publish waits in a bounded queue
// (Config.MaxQueuedPublishes; past it ErrPublishQueueFull), and queued
// publishes of one channel are sent in the order Publish was called, one
// at a time. A refusal by the server (a *wire.ErrorFrame, e.g. bad_channel)
// is returned as is. When ctx ends first, Publish returns its error: a
// publish not yet sent is withdrawn, one already sent may have been
// appended (publish again with the same key to learn its cursor).
func (c *Client) Publish(ctx context.Context, channel string, data any, opts ...PublishOption) (PublishResult, error) {
	raw, err := marshalData(data)
	if err != nil {
		return PublishResult{}, err
	}
	if !wire.ValidChannel(channel) {
		return PublishResult{}, &wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeBadChannel, Message: fmt.Sprintf("channel %q is not valid", channel)}
	}
	it := &pubItem{channel: channel, data: raw, done: make(chan struct{})}
	for _, o := range opts {
		o(it)
	}
	if it.key == "" {
		it.key = newKey()
	} else if !wire.ValidKey(it.key) {
		return PublishResult{}, &wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeBadIdempotencyKey, Message: "an idempotency key is 1 to 255 bytes of printable ASCII"}
	}
	c.mu.Lock()
	if c.isClosing() {
		c.mu.Unlock()
		return PublishResult{}, c.closedErr()
	}
	if c.outboxN >= c.cfg.MaxQueuedPublishes {
		c.mu.Unlock()
		return PublishResult{}, ErrPublishQueueFull
	}
	c.outbox[channel] = append(c.outbox[channel], it)
	c.outboxN++
	l := c.link
	start := l != nil && c.pumping[channel] != l
	if start {
		c.pumping[channel] = l
	}
	c.mu.Unlock()
	if start {
		c.goPump(l, channel)
	}
	select {
	case <-it.done:
	case <-ctx.Done():
		c.mu.Lock()
		c.withdrawLocked(it)
		it.finishLocked(PublishResult{}, context.Cause(ctx))
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return it.res, it.err
}

func marshalData(data any) (json.RawMessage, error) {
	if raw, ok := data.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, errors.New("tether: client: data is not valid JSON")
		}
		return raw, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("tether: client: data: %w", err)
	}
	return b, nil
}

// newKey is a fresh idempotency key: 128 random bits.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withdrawLocked takes it out of the outbox, wherever it is.
func (c *Client) withdrawLocked(it *pubItem) {
	q := c.outbox[it.channel]
	if i := slices.Index(q, it); i >= 0 {
		q = slices.Delete(q, i, i+1)
		c.outboxN--
		if len(q) == 0 {
			delete(c.outbox, it.channel)
		} else {
			c.outbox[it.channel] = q
		}
	}
}

// pumpAll starts sending every channel's queue on l, which just came up.
func (c *Client) pumpAll(l link) {
	c.mu.Lock()
	var chans []string
	for ch := range c.outbox {
		if c.pumping[ch] != l {
			c.pumping[ch] = l
			chans = append(chans, ch)
		}
	}
	c.mu.Unlock()
	for _, ch := range chans {
		c.goPump(l, ch)
	}
}

func (c *Client) goPump(l link, channel string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.pump(l, channel)
	}()
}

// pump sends channel's queued publishes on l, one at a time in order,
// until the queue is empty or l is no longer the live link. A publish
// whose answer was lost is sent again with the same key, here or on the
// next link, so it is appended once.
func (c *Client) pump(l link, channel string) {
	for try := 0; ; {
		c.mu.Lock()
		q := c.outbox[channel]
		if len(q) == 0 || c.link != l || c.pumping[channel] != l {
			if c.pumping[channel] == l {
				delete(c.pumping, channel)
			}
			c.mu.Unlock()
			return
		}
		it := q[0]
		c.mu.Unlock()

		ctx, cancel := c.reqCtx()
		r, err := l.publish(ctx, channel, it.data, it.key)
		cancel()
		var ef *wire.ErrorFrame
		isEF := errors.As(err, &ef)
		if err == nil || isEF && !ef.Code.Retryable() {
			c.mu.Lock()
			c.withdrawLocked(it)
			it.finishLocked(PublishResult{Channel: channel, Cursor: r.Cursor, Duplicate: r.Duplicate}, err)
			c.mu.Unlock()
			try = 0
			continue
		}
		// Retryable, or the answer was lost: again, same key.
		if !c.pauseOn(l, c.backoff(try)) {
			c.mu.Lock()
			if c.pumping[channel] == l {
				delete(c.pumping, channel)
			}
			c.mu.Unlock()
			return
		}
		try++
	}
}
