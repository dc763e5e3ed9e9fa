package prototest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Frame is a decoded server frame. The client adds "_rx", the time.Time
// it was read at.
type Frame map[string]any

// Str returns f[k] if it is a string, else "".
func (f Frame) Str(k string) string { s, _ := f[k].(string); return s }

// Client is a real peer speaking the framed protocol. A goroutine reads
// its frames into Frames (closed at EOF or error, the error in ReadErr),
// answering pings when pong is set.
type Client struct {
	// Frames holds the frames read and not yet taken, pings included
	// unless the client answers them. Next and Request read it; a test
	// may read it directly instead.
	Frames <-chan Frame

	t       testing.TB
	write   func([]byte)
	frames  chan Frame
	done    chan struct{}
	readErr error // set before frames is closed
	pong    bool
	held    []Frame // frames Request read past while looking for its answer
}

// NewClient starts reading frames with read, which returns one frame's
// bytes, until it fails. write sends one encoded frame; its errors are
// ignored, as they show on the read side. When pong is set, pings are
// answered and kept out of Frames.
func NewClient(t testing.TB, read func() ([]byte, error), write func([]byte), pong bool) *Client {
	c := &Client{t: t, write: write, frames: make(chan Frame, 100000), done: make(chan struct{}), pong: pong}
	c.Frames = c.frames
	go c.readLoop(read)
	return c
}

func (c *Client) readLoop(read func() ([]byte, error)) {
	defer close(c.done)
	defer close(c.frames)
	for {
		b, err := read()
		if err != nil {
			c.readErr = err
			return
		}
		rx := time.Now()
		var f Frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.readErr = fmt.Errorf("bad frame %q: %w", b, err)
			return
		}
		if c.pong && f.Str("type") == "ping" {
			c.Send(map[string]any{"type": "pong", "id": f["id"]})
			continue
		}
		f["_rx"] = rx
		c.frames <- f
	}
}

// ReadErr is the error that ended the read side. It is set once Frames is
// closed.
func (c *Client) ReadErr() error { return c.readErr }

// Send encodes v as one frame and writes it.
func (c *Client) Send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.write(b)
}

// Next returns the next frame that is not a ping, failing the test if
// none comes within 10s or the connection ends.
func (c *Client) Next() Frame {
	c.t.Helper()
	if len(c.held) > 0 {
		f := c.held[0]
		c.held = c.held[1:]
		return f
	}
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection ended (%v) while waiting for a frame", c.readErr)
			}
			if f.Str("type") == "ping" {
				continue
			}
			return f
		case <-time.After(10 * time.Second):
			c.t.Fatal("no frame within 10s")
		}
	}
}

// WaitClosed waits up to 15s for the read side to end and returns its
// error.
func (c *Client) WaitClosed() error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.readErr
	case <-time.After(15 * time.Second):
		c.t.Fatal("connection not closed within 15s")
		return nil
	}
}

// Request sends v and returns its answer, the next reply, error or pong,
// which must carry v's id. Replies and messages travel in separate lanes,
// so a message may overtake a reply: what comes first is kept for later
// Next calls.
func (c *Client) Request(v map[string]any) Frame {
	c.t.Helper()
	c.Send(v)
	var other []Frame
	for {
		f := c.Next()
		if f.Str("id") == v["id"] && isAnswer(f) {
			c.held = append(other, c.held...)
			return f
		}
		if isAnswer(f) {
			c.t.Fatalf("answer %v does not carry id %v", f, v["id"])
		}
		other = append(other, f)
	}
}

// isAnswer reports whether f answers a request (as opposed to a message,
// gap or shutdown frame that may overtake it).
func isAnswer(f Frame) bool {
	switch f.Str("type") {
	case "reply", "error", "pong":
		return true
	}
	return false
}

// WantOK fails the test unless f is an ok reply.
func WantOK(t testing.TB, f Frame) {
	t.Helper()
	if f.Str("type") != "reply" || f["ok"] != true {
		t.Fatalf("got %v, want an ok reply", f)
	}
}

// WantError fails the test unless f is an error frame with code.
func WantError(t testing.TB, f Frame, code string) {
	t.Helper()
	if f.Str("type") != "error" || f.Str("code") != code {
		t.Fatalf("got %v, want error %s", f, code)
	}
}

// Latencies reads the messages with the cursors published, in that order,
// skipping other frames, and returns how long each took from its "time"
// to being read, sorted.
func (c *Client) Latencies(published []string) []time.Duration {
	c.t.Helper()
	var lat []time.Duration
	for i, want := range published {
		f := c.Next()
		for f.Str("type") != "message" {
			f = c.Next()
		}
		if f.Str("cursor") != want {
			c.t.Fatalf("message %d has cursor %s, want %s", i, f.Str("cursor"), want)
		}
		ts, err := time.Parse(time.RFC3339Nano, f.Str("time"))
		if err != nil {
			c.t.Fatal(err)
		}
		lat = append(lat, f["_rx"].(time.Time).Sub(ts))
	}
	slices.Sort(lat)
	return lat
}
