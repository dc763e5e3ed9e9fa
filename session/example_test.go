package session_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
	"github.com/tether-run/tether/wire"
)

// clock is an Extension: it adds the request type "clock" to the framed
// protocol, the way package jobs/workerproto adds the worker requests.
type clock struct{}

func (clock) RequestTypes() []string { return []string{"clock"} }

func (clock) Serve(s *session.Session, typ, id string, frame []byte) {
	s.Reply(wire.Reply{ID: id, Cursor: time.Unix(0, 0).UTC().Format(time.RFC3339)})
}

func (clock) Ended(*session.Session, bool) {}

// A Core with an extension, served over TCP; the Registry is the one
// shutdown path.
func Example_extension() {
	dir, _ := os.MkdirTemp("", "tether-example")
	defer os.RemoveAll(dir)
	st, _ := pebblestore.Open(pebblestore.Config{Dir: dir})
	defer st.Close()
	reg, _ := registry.New(registry.Config{})
	core, err := session.New(session.Config{}, st, reg, nil, session.Access{}, clock{})
	if err != nil {
		panic(err)
	}
	srv, _ := tcp.New(tcp.Config{Addr: "127.0.0.1:0"}, core)
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}

	c, _ := net.Dial("tcp", srv.Addr().String())
	fmt.Fprintln(c, `{"id":"1","type":"clock"}`)
	lines := bufio.NewScanner(c)
	lines.Scan()
	fmt.Println(lines.Text())

	// The client answers the shutdown notice with bye.
	go func() {
		lines.Scan() // {"type":"shutdown","reconnect_after_ms":0}
		fmt.Fprintln(c, `{"type":"bye"}`)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.StopAccepting()
	reg.Shutdown(ctx, 0) // notify, wait for the client to leave, close the rest
	srv.Stop(ctx)
	// Output:
	// {"type":"reply","id":"1","ok":true,"cursor":"1970-01-01T00:00:00Z"}
}
