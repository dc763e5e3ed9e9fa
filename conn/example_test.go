//go:build linux

package conn_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/tether-run/tether/conn"
)

// A long-poll handler wrapped with Watch: a client that half-closes after
// its request still gets the answer, and a client that resets is reported
// as gone, with the reason in context.Cause.
func Example() {
	ln, err := conn.Listen(context.Background(), "127.0.0.1:0", conn.KeepAlive{})
	if err != nil {
		panic(err)
	}
	events := make(chan string)
	waiting := make(chan struct{})
	done := make(chan struct{}, 1)
	longPoll := func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		waiting <- struct{}{}
		select {
		case ev := <-events:
			fmt.Fprint(w, ev)
		case <-r.Context().Done():
			fmt.Println("handler: client gone:", conn.ReasonOf(context.Cause(r.Context())))
		}
	}
	srv := &http.Server{
		Handler:     conn.Watch(http.HandlerFunc(longPoll), conn.WatchConfig{}),
		ConnContext: conn.ConnContext,
	}
	go srv.Serve(ln)
	defer srv.Close()

	// Client A sends its request, then shuts down its sending side.
	a, _ := net.Dial("tcp", ln.Addr().String())
	defer a.Close()
	io.WriteString(a, "GET /poll HTTP/1.1\r\nHost: example\r\n\r\n")
	a.(*net.TCPConn).CloseWrite()
	<-waiting
	br := bufio.NewReader(a)
	interim, _ := http.ReadResponse(br, nil) // Watch's probe
	fmt.Println("client A:", interim.Status)
	events <- "event-1"
	res, _ := http.ReadResponse(br, nil)
	body, _ := io.ReadAll(res.Body)
	fmt.Println("client A:", res.Status, string(body))
	<-done

	// Client B resets its connection while waiting.
	b, _ := net.Dial("tcp", ln.Addr().String())
	io.WriteString(b, strings.ReplaceAll("GET /poll HTTP/1.1|Host: example||", "|", "\r\n"))
	<-waiting
	b.(*net.TCPConn).SetLinger(0)
	b.Close()
	<-done

	// Output:
	// client A: 102 Processing
	// client A: 200 OK event-1
	// handler: client gone: reset
}
