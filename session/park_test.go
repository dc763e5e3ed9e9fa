package session

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// pipeTransport is a FramedTransport in memory: the test sends client
// frames on in and reads what the session wrote on out.
type pipeTransport struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newPipe() *pipeTransport {
	return &pipeTransport{in: make(chan []byte, 16), out: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (p *pipeTransport) ReadFrame(context.Context) ([]byte, error) {
	select {
	case b := <-p.in:
		return b, nil
	case <-p.closed:
		return nil, errors.New("closed")
	}
}

func (p *pipeTransport) WriteFrame(_ context.Context, frame []byte, _ bool) error {
	if frame == nil {
		return nil // a flush: nothing is buffered here
	}
	select {
	case p.out <- append([]byte(nil), frame...):
		return nil
	case <-p.closed:
		return errors.New("closed")
	}
}

func (p *pipeTransport) Format() Format                    { return JSON }
func (p *pipeTransport) CloseGracefully(conn.Reason) error { return p.Close() }
func (p *pipeTransport) Close() error                      { p.once.Do(func() { close(p.closed) }); return nil }
func (p *pipeTransport) NetConn() net.Conn                 { return nil }
func (p *pipeTransport) Reason(error) conn.Reason          { return conn.ReasonClosed }

// next returns the next frame the session wrote whose type is typ.
func (p *pipeTransport) next(t *testing.T, typ string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-p.out:
			if strings.Contains(string(b), `"type":"`+typ+`"`) {
				return string(b)
			}
		case <-deadline:
			t.Fatalf("no %s frame within 10s", typ)
		}
	}
}

// waitCounting counts the store waits in progress.
type waitCounting struct {
	store.Store
	waiting atomic.Int64
}

func (w *waitCounting) Wait(ctx context.Context, channel string, after store.Cursor) error {
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	return w.Store.Wait(ctx, channel, after)
}

// TestParkedSubscribersShareOneWait: caught-up subscribers of a channel
// wait with one store wait between them, not one each, are all woken by
// an append, and an unsubscribe of a parked subscription is answered.
func TestParkedSubscribersShareOneWait(t *testing.T) {
	st := &waitCounting{Store: openCounting(t)}
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{}, st, reg, nil, Access{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	pipes := make([]*pipeTransport, n)
	served := make(chan struct{}, n)
	for i := range pipes {
		p := newPipe()
		pipes[i] = p
		go func() {
			c.Serve(context.Background(), p, auth.Open(), registry.OpenInfo{Transport: registry.TransportTCP}, nil)
			served <- struct{}{}
		}()
		p.in <- []byte(`{"id":"s","type":"subscribe","channel":"fan","after":"0"}`)
		p.next(t, wire.TypeReply)
	}
	waitUntil(t, "one shared store wait", func() bool { return st.waiting.Load() == 1 })
	if _, err := st.Append(context.Background(), "fan", []byte(`"m"`), store.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pipes {
		p.next(t, wire.TypeMessage)
	}
	waitUntil(t, "one shared store wait again", func() bool { return st.waiting.Load() == 1 })
	// A parked subscription unsubscribes.
	pipes[0].in <- []byte(`{"id":"u","type":"unsubscribe","channel":"fan"}`)
	if r := pipes[0].next(t, wire.TypeReply); !strings.Contains(r, `"id":"u"`) {
		t.Fatalf("unsubscribe answered %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range pipes {
		p.Close()
	}
	for range pipes {
		select {
		case <-served:
		case <-ctx.Done():
			t.Fatal("sessions did not end")
		}
	}
	waitUntil(t, "no store wait left", func() bool { return st.waiting.Load() == 0 })
}
