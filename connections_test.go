package tether_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// Long-polls and SSE streams are connections like any other: listed,
// closable by an operator, and told of a shutdown with a spread hint.
func TestHTTPConnectionsAreTracked(t *testing.T) {
	ends := make(chan conn.Reason, 10)
	n := startNode(t, func(c *tether.Config) { c.ShutdownSpread = 2 * time.Second },
		tether.OnDisconnect(func(i registry.Info, r conn.Reason) { ends <- r }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := n.openSSE(ctx, "tracked", "", nil)
	polled := make(chan pollAnswer, 1)
	go func() {
		resp, err := http.Get(n.base + "/v1/channels/tracked/messages?wait=60s")
		if err != nil {
			t.Error(err)
			close(polled)
			return
		}
		defer resp.Body.Close()
		var a pollAnswer
		decodeStatus(t, resp, 200, &a)
		polled <- a
	}()
	n.waitingPolls(1)
	var list struct{ Connections []registry.Info }
	resp, err := http.Get(n.base + "/v1/connections")
	if err != nil {
		t.Fatal(err)
	}
	decodeStatus(t, resp, 200, &list)
	resp.Body.Close()
	byTransport := map[registry.Transport]registry.Info{}
	for _, c := range list.Connections {
		byTransport[c.Transport] = c
	}
	lp, ok1 := byTransport[registry.TransportLongPoll]
	sse, ok2 := byTransport[registry.TransportSSE]
	if !ok1 || !ok2 || len(lp.Channels) != 1 || lp.Channels[0] != "tracked" || lp.ID == "" || sse.BytesOut == 0 {
		t.Fatalf("connections %+v, want a long-poll and an SSE stream on channel tracked", list.Connections)
	}

	// An operator closes the long-poll gracefully: it gets its keepalive.
	resp, err = http.Post(n.base+"/v1/connections/"+lp.ID+"/close?mode=close", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var closed map[string]string
	decodeStatus(t, resp, 200, &closed)
	resp.Body.Close()
	if a, ok := <-polled; !ok || len(a.Messages) != 0 {
		t.Fatalf("kicked long-poll answered %+v", a)
	}
	if r := <-ends; r != conn.ReasonKicked {
		t.Fatalf("long-poll ended with %q, want kicked", r)
	}

	// Stop tells the SSE stream, which then ends with reason shutdown.
	stopped := make(chan struct{})
	go func() { n.stop(); close(stopped) }()
	ev := s.next(t)
	var hint struct {
		ReconnectAfterMS *int64 `json:"reconnect_after_ms"`
	}
	if ev.event != "shutdown" || json.Unmarshal([]byte(ev.data), &hint) != nil || hint.ReconnectAfterMS == nil {
		t.Fatalf("SSE got %+v, want a shutdown event with a reconnect hint", ev)
	}
	if r := <-ends; r != conn.ReasonShutdown {
		t.Fatalf("SSE ended with %q, want shutdown", r)
	}
	<-stopped
}
