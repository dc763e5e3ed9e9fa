package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveRaw answers every connection to a loopback listener with the bytes
// of respond after reading the request's headers, then closes it. Cleanup
// waits for every respond to return.
func serveRaw(t testing.TB, respond func(w io.Writer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				respond(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// chunk frames p as one chunk of the chunked transfer coding.
func chunk(p string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(p), p) }

func TestSSEStreamFraming(t *testing.T) {
	events := "id: 1-0\ndata: one\n\n" +
		": a comment\n\n" +
		"event: gap\r\ndata: {\"after\":\"1-0\"}\r\n\r\n" +
		"retry: 10\nid: 2-0\ndata: first\ndata:second\n\n"
	want := []string{"1-0||one", `|gap|{"after":"1-0"}`, "2-0||first\nsecond"}
	// The same events, with the body cut into chunks at every offset.
	var chunked []string
	for cut := 1; cut < len(events); cut += 7 {
		chunked = append(chunked, chunk(events[:cut])+chunk(events[cut:])+"0\r\n\r\n")
	}
	for _, tc := range []struct {
		name, head, body string
	}{
		{"one chunk", "Transfer-Encoding: chunked\r\n", chunk(events) + "0\r\n\r\n"},
		{"byte chunks", "Transfer-Encoding: chunked\r\n", func() string {
			var b strings.Builder
			for i := range len(events) {
				b.WriteString(chunk(events[i : i+1]))
			}
			return b.String() + "0\r\n\r\n"
		}()},
		{"content-length", fmt.Sprintf("Content-Length: %d\r\n", len(events)), events},
		{"until close", "", events},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSSE(t, tc.head, tc.body, want)
		})
	}
	for i, body := range chunked {
		t.Run(fmt.Sprintf("two chunks %d", i), func(t *testing.T) {
			checkSSE(t, "Transfer-Encoding: chunked\r\n", body, want)
		})
	}
}

// checkSSE serves one response with header lines head and body, reads it
// with openSSE and compares the events ("id|event|data") with want; the
// stream must then end with io.EOF.
func checkSSE(t *testing.T, head, body string, want []string) {
	t.Helper()
	addr := serveRaw(t, func(w io.Writer) {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"+head+"\r\n"+body)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := openSSE(ctx, &dialer{}, Tether, addr, "c", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for i, w := range want {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got := string(ev.id) + "|" + string(ev.event) + "|" + string(ev.data); got != w {
			t.Errorf("event %d = %q, want %q", i, got, w)
		}
	}
	if ev, err := s.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last event: %q, %v; want io.EOF", ev.data, err)
	}
}

func TestSSEStreamRefused(t *testing.T) {
	addr := serveRaw(t, func(w io.Writer) {
		io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	})
	_, err := openSSE(context.Background(), &dialer{}, Tether, addr, "c", "", true)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want the 404", err)
	}
}

func TestSSEStreamCloseUnblocks(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	addr := serveRaw(t, func(w io.Writer) {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		<-hold
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := openSSE(ctx, &dialer{}, Tether, addr, "c", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	got := make(chan error, 1)
	go func() { _, err := s.next(); got <- err }()
	cancel()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("next returned an event after the context ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("next still blocked 10s after the context ended")
	}
}

// FuzzSSEStream: any body bytes end in events or an error, never a panic,
// a hang or a line longer than the bound.
func FuzzSSEStream(f *testing.F) {
	f.Add([]byte(chunk("id: 1\ndata: x\n\n") + "0\r\n\r\n"))
	f.Add([]byte("5\r\ndata:\r\n3\r\n x\n\r\n1\r\n\n\r\n0\r\n\r\n"))
	f.Add([]byte("zz\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := &sseStream{br: bufio.NewReaderSize(bytes.NewReader(body), 4096), chunked: true}
		for range len(body) + 1 { // each event takes at least one byte
			ev, err := s.next()
			if err != nil {
				return
			}
			if len(ev.data) > len(body) {
				t.Fatalf("event of %d bytes from a body of %d", len(ev.data), len(body))
			}
		}
		t.Fatal("more events than body bytes")
	})
}

// sseBlock is a chunked SSE body of 64 events of the harness's payload,
// one chunk per event as a server that flushes each one sends them.
func sseBlock() []byte {
	var b []byte
	for i := range 64 {
		ev := fmt.Sprintf("id: %010d-0\ndata: \"%s\"\n\n", i, payload(int64(i+1), time.Now()))
		b = append(b, chunk(ev)...)
	}
	return b
}

// BenchmarkSSEClient: how many events per second one client goroutine
// parses off a loopback stream, with the harness's lean reader (raw) and
// with net/http's client and a bufio line reader over its body (net/http,
// the harness's SSE client before it). The server writes 64 pre-encoded
// events per write, so the client is the bottleneck.
//
//	go test -run '^$' -bench SSEClient -benchmem ./internal/bench/
func BenchmarkSSEClient(b *testing.B) {
	block := sseBlock()
	addr := serveRaw(b, func(w io.Writer) {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	run := func(b *testing.B, next func() ([]byte, error)) {
		b.ReportAllocs()
		b.SetBytes(int64(len(block) / 64))
		cpu0 := selfCPU()
		for b.Loop() {
			d, err := next()
			if err != nil {
				b.Fatal(err)
			}
			if len(d) != PayloadSize+2 {
				b.Fatalf("data of %d bytes", len(d))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		// CPU rather than wall time: the machine is shared. The server's
		// writes are in it too, the same for both clients.
		b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/event")
	}
	b.Run("raw", func(b *testing.B) {
		s, err := openSSE(context.Background(), &dialer{}, Tether, addr, "c", "", true)
		if err != nil {
			b.Fatal(err)
		}
		defer s.close()
		run(b, func() ([]byte, error) { ev, err := s.next(); return ev.data, err })
	})
	b.Run("net/http", func(b *testing.B) {
		hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		defer hc.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/channels/c/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		res, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReaderSize(res.Body, 4096)
		run(b, func() ([]byte, error) { return nethttpSSENext(br) })
	})
}

// nethttpSSENext is the harness's SSE event reader before sseStream: a
// bufio line reader over net/http's response body, one allocation per
// event for its data.
func nethttpSSENext(br *bufio.Reader) ([]byte, error) {
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if data != nil {
				return data, nil
			}
		case bytes.HasPrefix(line, []byte("id:")):
			_ = strings.TrimSpace(string(line[3:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = bytes.Clone(bytes.TrimSpace(line[5:]))
		}
	}
}
