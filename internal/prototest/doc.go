// Package prototest is what the transport tests share: a real node (the
// Pebble engine in a temp dir, a registry.Registry and a session.Core) and
// one client for the framed protocol that works over any transport.
//
// A transport's test adapts its connection to two functions, one that
// reads the next frame's bytes and one that writes a frame, and hands them
// to NewClient:
//
//	br := bufio.NewReader(nc)
//	c := prototest.NewClient(t, func() ([]byte, error) { return br.ReadBytes('\n') },
//		func(b []byte) { nc.Write(append(b, '\n')) }, true)
//	prototest.WantOK(t, c.Request(map[string]any{"id": "s", "type": "subscribe", "channel": "a"}))
//
// It is for _test.go files only.
//
// Concurrency: each Client starts one goroutine, which reads until the
// read function fails and then closes Frames; the read function must fail
// once the connection is closed, which the test's cleanup does. Next,
// Request and WaitClosed belong to the test goroutine; Send and the write
// function may be called from any goroutine, the write function also from
// the reader (answering pings), so it must be safe for concurrent use.
package prototest
