package tcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store/pebblestore"
	"github.com/tether-run/tether/tcp"
)

// A node serving the TCP transport, and a client speaking NDJSON to it.
func Example() {
	dir, _ := os.MkdirTemp("", "tether-example")
	defer os.RemoveAll(dir)
	st, _ := pebblestore.Open(pebblestore.Config{Dir: dir})
	defer st.Close()
	reg, _ := registry.New(registry.Config{})
	core, _ := session.New(session.Config{}, st, reg, nil, session.Access{})
	srv, _ := tcp.New(tcp.Config{Addr: "127.0.0.1:0"}, core)
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Stop(context.Background())

	c, _ := net.Dial("tcp", srv.Addr().String())
	defer c.Close()
	fmt.Fprintln(c, `{"type":"hello","session":"device-42"}`)
	fmt.Fprintln(c, `{"id":"1","type":"subscribe","channel":"news","after":"0"}`)
	lines := bufio.NewScanner(c)
	lines.Scan()
	fmt.Println(lines.Text()) // the subscribe reply
	fmt.Fprintln(c, `{"id":"2","type":"publish","channel":"news","data":{"title":"hi"}}`)
	for range 2 { // the publish reply and the message, in either order
		lines.Scan()
		var f struct{ Type, ID, Cursor, Channel string }
		json.Unmarshal(lines.Bytes(), &f)
		if f.Type == "message" {
			fmt.Println("message", f.Channel, f.Cursor)
		}
	}
	// Output:
	// {"type":"reply","id":"1","ok":true,"cursor":"0"}
	// message news 1
}
