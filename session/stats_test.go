package session_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
)

// The summaries for the dashboard, over real TCP connections: channels by
// subscribers (bounded, the rest counted), the first subscriptions of a
// channel (oldest first, bounded, with the total), and the consumers.
func TestStats(t *testing.T) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tcp.New(tcp.Config{Addr: "127.0.0.1:0"}, core)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.StopAccepting()
		reg.Shutdown(ctx, 0)
		srv.Stop(ctx)
	}()

	// Three clients on "a", one after the other; the last also on "b".
	var ids []string
	for i := range 3 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		chans := []string{"a"}
		if i == 2 {
			chans = append(chans, "b")
		}
		for n, ch := range chans {
			fmt.Fprintf(c, `{"id":"%d","type":"subscribe","channel":%q}`+"\n", n+1, ch)
			if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, `"ok":true`) {
				t.Fatalf("subscribe %s: %q, %v", ch, line, err)
			}
		}
		// Its id: the newest subscription of "a".
		all := core.Presence("a")
		ids = append(ids, all[len(all)-1].Conn)
	}

	chans, other := core.Subscribed(1)
	if len(chans) != 1 || chans[0].Channel != "a" || chans[0].Subscribers != 3 || chans[0].ByTransport["tcp"] != 3 || other != 1 {
		t.Errorf("Subscribed(1) = %+v, %d; want a with 3 tcp, 1 other", chans, other)
	}
	if all, _ := core.Subscribed(-1); len(all) != 2 || all[1].Channel != "b" || all[1].Subscribers != 1 {
		t.Errorf("Subscribed(-1) = %+v, want a then b", all)
	}
	first, total := core.PresenceFirst("a", 2)
	if total != 3 || len(first) != 2 || first[0].Conn != ids[0] || first[1].Conn != ids[1] {
		t.Errorf("PresenceFirst(a, 2) = %+v, %d; want %v first, 3 in all", first, total, ids[:2])
	}
	if first, total := core.PresenceFirst("none", 5); total != 0 || len(first) != 0 {
		t.Errorf("PresenceFirst(none) = %+v, %d", first, total)
	}
	cs := core.Consumers(10)
	if len(cs) != 3 {
		t.Fatalf("Consumers = %+v, want 3", cs)
	}
	for _, c := range cs {
		if c.Transport != "tcp" || c.Lag != 0 || c.QueueLimit != session.DefaultQueueBytes {
			t.Errorf("consumer %+v: want a caught-up tcp one", c)
		}
		want := 1
		if c.Conn == ids[2] {
			want = 2
		}
		if c.Channels != want {
			t.Errorf("consumer %s: %d channels, want %d", c.Conn, c.Channels, want)
		}
	}
	if got := core.Consumers(1); len(got) != 1 {
		t.Errorf("Consumers(1) = %d entries", len(got))
	}
}
