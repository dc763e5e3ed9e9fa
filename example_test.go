package tether_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// tempDir is a data directory for an example.
func tempDir() string {
	dir, err := os.MkdirTemp("", "tether-example-")
	if err != nil {
		panic(err)
	}
	return dir
}

// An application serves tether's routes next to its own, on one port.
// tether.Listen and ConnContext give tether the socket of each request, so
// it tells a client that left from one that half-closed and waits.
func Example_embed() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	ctx := context.Background()

	node, err := tether.New(tether.Config{DataDir: dir}, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", node.Handler())
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the app")
	})
	ln, err := tether.Listen(ctx, "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux, ConnContext: tether.ConnContext}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()

	fmt.Println(get(base + "/hello"))
	post(base+"/v1/channels/news/messages", `{"title":"hello"}`)
	fmt.Println(get(base + "/v1/channels/news/messages?after=0&wait=0s"))

	node.Shutdown(ctx) // tells tether's clients, drains them, closes the store
	srv.Shutdown(ctx)
	// Output:
	// hello from the app
	// {"messages":[{"id":"1","data":{"title":"hello"},"time":"…"}],"next":"1"}
}

// A Go program publishes in process; subscribers on every transport, on
// every node of the same store, receive the message.
func ExampleNode_Publish() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	ctx := context.Background()
	node, err := tether.New(tether.Config{DataDir: dir, Addr: "127.0.0.1:0"}, tether.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Shutdown(ctx)

	res, err := node.Publish(ctx, "orders", []byte(`{ "id": 7 }`), tether.PublishOptions{IdempotencyKey: "order-7"})
	if err != nil {
		panic(err)
	}
	again, _ := node.Publish(ctx, "orders", []byte(`{"id":7}`), tether.PublishOptions{IdempotencyKey: "order-7"})
	fmt.Println("cursor", res.ID, "repeat is a duplicate:", again.Duplicate, again.ID)
	fmt.Println(get("http://" + node.Addr().String() + "/v1/channels/orders/messages?after=0"))
	// Output:
	// cursor 1 repeat is a duplicate: true 1
	// {"messages":[{"id":"1","data":{"id":7},"time":"…"}],"next":"1"}
}

// OnDisconnect runs once per connection, of any transport, with how it
// ended: here a long-poll whose client closed its socket while it waited.
func ExampleOnDisconnect() {
	dir := tempDir()
	defer os.RemoveAll(dir)
	ctx := context.Background()
	connected, ended := make(chan struct{}, 1), make(chan string, 1)
	node, err := tether.New(tether.Config{DataDir: dir, Addr: "127.0.0.1:0"},
		tether.WithLogger(slog.New(slog.DiscardHandler)),
		tether.OnConnect(func(registry.Info) { connected <- struct{}{} }),
		tether.OnDisconnect(func(i registry.Info, r conn.Reason) {
			ended <- fmt.Sprint(i.Transport, " ", r)
		}))
	if err != nil {
		panic(err)
	}
	if err := node.Start(ctx); err != nil {
		panic(err)
	}
	defer node.Shutdown(ctx)

	c, err := net.Dial("tcp", node.Addr().String())
	if err != nil {
		panic(err)
	}
	fmt.Fprint(c, "GET /v1/channels/news/messages?wait=60s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	<-connected
	c.Close()
	fmt.Println(<-ended)
	// Output:
	// long-poll closed
}

// get returns a response body with its timestamps elided.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return elideTimes(strings.TrimSpace(string(b)))
}

func post(url, body string) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
}

// elideTimes replaces every "time":"..." value with "…".
func elideTimes(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, `"time":"`)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		i += len(`"time":"`)
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, '"')
		b.WriteString("…")
		s = s[j:]
	}
}
