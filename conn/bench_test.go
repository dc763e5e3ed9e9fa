//go:build linux

package conn

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkWatch measures Watch's cost per request (client and server in
// this process, keep-alive over loopback): a watcher, a wrapped writer,
// two contexts and an AfterFunc registration; no goroutine.
func BenchmarkWatch(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"plain", ok},
		{"watched", Watch(ok, WatchConfig{})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := startServer(b, unwatched{bc.h}, WatchConfig{}, KeepAlive{})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr}
			b.ReportAllocs()
			for b.Loop() {
				res, err := cl.Get("http://" + ts.addr + "/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}

// unwatched marks a handler that startServer must not wrap again.
type unwatched struct{ http.Handler }
