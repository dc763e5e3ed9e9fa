package prototest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/store/pebblestore"
)

// Node is a real node but for its transport: the Pebble engine in a temp
// dir, a Registry and a session Core. The store is closed when the test ends,
// after the cleanups registered later (the transport's).
type Node struct {
	Store    *pebblestore.Store
	Registry *registry.Registry
	Core     *session.Core
	// Ends receives each connection end (buffer 100), unless
	// NodeConfig.Hooks.OnDisconnect is set.
	Ends chan End
}

// End is a connection end, as the Registry's OnDisconnect saw it.
type End struct {
	Info   registry.Info
	Reason conn.Reason
	At     time.Time
}

// NodeConfig configures NewNode. The zero value is a valid configuration.
type NodeConfig struct {
	// Protocol is the Core's config.
	Protocol session.Config
	// Retention is the store's.
	Retention store.Retention
	// Events, when set, receives "connect <session>" and
	// "disconnect <session>", in hook order.
	Events chan string
	// Hooks are the Registry's. When OnDisconnect is nil (the usual
	// case), the Node's own hooks feed Ends and Events; otherwise Hooks
	// are used as they are and Ends and Events receive nothing.
	Hooks registry.Config
}

// NewNode opens the store and builds the Registry and Core.
func NewNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir(), Retention: cfg.Retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &Node{Store: st, Ends: make(chan End, 100)}
	rc := cfg.Hooks
	if rc.OnDisconnect == nil {
		events := cfg.Events
		rc.OnDisconnect = func(i registry.Info, r conn.Reason) {
			if events != nil {
				events <- "disconnect " + i.SessionKey
			}
			n.Ends <- End{i, r, time.Now()}
		}
		if events != nil {
			rc.OnConnect = func(i registry.Info) { events <- "connect " + i.SessionKey }
		}
	}
	if n.Registry, err = registry.New(rc); err != nil {
		t.Fatal(err)
	}
	if n.Core, err = session.New(cfg.Protocol, st, n.Registry, nil, session.Access{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// NextEnd waits for the next connection end.
func (n *Node) NextEnd(t testing.TB, within time.Duration) End {
	t.Helper()
	select {
	case x := <-n.Ends:
		return x
	case <-time.After(within):
		t.Fatalf("no connection end within %v", within)
		return End{}
	}
}

// WantEnd waits up to 15s for the next connection end, which must have
// reason want.
func (n *Node) WantEnd(t testing.TB, want conn.Reason) End {
	t.Helper()
	return n.WantEndOf(t, want)
}

// WantEndOf waits up to 15s for the next connection end, which must have
// one of the reasons.
func (n *Node) WantEndOf(t testing.TB, reasons ...conn.Reason) End {
	t.Helper()
	select {
	case x := <-n.Ends:
		for _, r := range reasons {
			if x.Reason == r {
				return x
			}
		}
		if len(reasons) == 1 {
			t.Fatalf("end reason = %q, want %q", x.Reason, reasons[0])
		}
		t.Fatalf("end reason = %q, want one of %q", x.Reason, reasons)
	case <-time.After(15 * time.Second):
		if len(reasons) == 1 {
			t.Fatalf("no connection end within 15s, want %q", reasons[0])
		}
		t.Fatalf("no connection end within 15s, want one of %q", reasons)
	}
	return End{}
}

// StreamMessages appends a message of size bytes to channel every
// interval until the test ends.
func StreamMessages(t testing.TB, st store.Store, channel string, interval time.Duration, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		data := []byte(`"` + strings.Repeat("x", size) + `"`)
		for i := 0; ; i++ {
			if _, err := st.Append(ctx, channel, data, store.AppendOptions{}); err != nil && ctx.Err() == nil {
				t.Errorf("append %d: %v", i, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// PublishUntilEnd publishes a 4,000-byte message on channel through pub
// every 2ms until the node sees a connection end, and returns that end
// and the cursors published. It fails the test, naming who was to end, if
// no end comes within limit.
func (n *Node) PublishUntilEnd(t testing.TB, pub *Client, channel string, limit time.Duration, who string) (End, []string) {
	t.Helper()
	payload := strings.Repeat("x", 4000)
	var published []string
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case x := <-n.Ends:
			return x, published
		default:
		}
		if time.Since(start) > limit {
			t.Fatalf("%s not ended within %v", who, limit)
		}
		r := pub.Request(map[string]any{"id": fmt.Sprint(i), "type": "publish", "channel": channel, "data": payload})
		published = append(published, r.Str("cursor"))
		time.Sleep(2 * time.Millisecond) // pacing the publisher, not synchronisation
	}
}
