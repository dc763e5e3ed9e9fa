package ws_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
)

// benchConn is a raw WebSocket to a fresh server, and its client-side
// reader.
func benchConnB(b *testing.B) (net.Conn, *bufio.Reader) {
	e, _ := newCountingEnv(b, idleConfig)
	return rawDial(b, e.url)
}

// readPongs reads n server text frames.
func readPongs(b *testing.B, br *bufio.Reader, n int) {
	for range n {
		for {
			f, err := readServerFrame(br)
			if err != nil {
				b.Fatal(err)
			}
			if f.op == 0x1 {
				break
			}
		}
	}
}

// BenchmarkRequests: one ping request, then its pong, over and over: the
// cost of a frame read on readiness (arm, wake, read, dispatch, write).
func BenchmarkRequests(b *testing.B) {
	nc, br := benchConnB(b)
	req := clientFrame(0x81, `{"id":"p","type":"ping"}`)
	b.ResetTimer()
	for range b.N {
		nc.Write(req)
		readPongs(b, br, 1)
	}
}

// BenchmarkBursts: 100 ping requests in one write, then their 100 pongs.
func BenchmarkBursts(b *testing.B) {
	nc, br := benchConnB(b)
	var burst []byte
	for i := range 100 {
		burst = append(burst, clientFrame(0x81, fmt.Sprintf(`{"id":"p%d","type":"ping"}`, i))...)
	}
	b.ResetTimer()
	for range b.N {
		nc.Write(burst)
		readPongs(b, br, 100)
	}
}
