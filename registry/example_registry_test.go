package registry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// nopPeer stands for a transport; a real one closes its socket in Close
// (see conn.CloseConn) and sends a shutdown frame in NotifyShutdown.
type nopPeer struct{}

func (nopPeer) Close(conn.CloseMode, conn.Reason) error { return nil }
func (nopPeer) NotifyShutdown(time.Duration)            {}

// A client reconnects with its session key before its previous
// connection's end was processed: the new connection is admitted only once
// the old one's cleanup has returned, so the application never tears down
// state its successor already uses.
func ExampleRegistry() {
	reg, err := registry.New(registry.Config{
		OnConnect:    func(i registry.Info) { fmt.Println("connect", i.Transport, i.SessionKey) },
		OnDisconnect: func(i registry.Info, r conn.Reason) { fmt.Println("cleanup", i.SessionKey, r) },
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	oi := registry.OpenInfo{Transport: registry.TransportWebSocket, Remote: "192.0.2.7:50000", SessionKey: "alice"}
	first, err := reg.Open(ctx, oi, nopPeer{})
	if err != nil {
		panic(err)
	}

	admitted := make(chan *registry.Handle)
	go func() {
		h, err := reg.Open(ctx, oi, nopPeer{}) // waits for first's cleanup
		if err != nil {
			panic(err)
		}
		admitted <- h
	}()
	first.End(conn.ReasonHeartbeatTimeout, 0)
	second := <-admitted
	fmt.Println(len(reg.List()), "live")
	second.End(conn.ReasonClosed, 0)
	// Output:
	// connect websocket alice
	// cleanup alice heartbeat-timeout
	// connect websocket alice
	// 1 live
	// cleanup alice closed
}
