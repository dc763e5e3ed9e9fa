package tcp_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tether-run/tether/session"
)

// BenchmarkPublish measures publishes on one TCP connection, answered once
// durable: one at a time (sequential), and 64 in flight (pipelined, the
// default MaxInFlight), where group commit shares fsyncs.
func BenchmarkPublish(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			e := newEnvB(b)
			c := connect(b, e.addr, true)
			var mu sync.Mutex
			waiting := map[string]chan struct{}{}
			go func() {
				for f := range c.Frames {
					mu.Lock()
					ch := waiting[f.Str("id")]
					mu.Unlock()
					if ch != nil {
						close(ch)
					}
				}
			}()
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range inflight {
				wg.Go(func() {
					for {
						i := n.Add(1)
						if i > int64(b.N) {
							return
						}
						id := fmt.Sprint(i)
						ch := make(chan struct{})
						mu.Lock()
						waiting[id] = ch
						mu.Unlock()
						c.Send(map[string]any{"id": id, "type": "publish", "channel": "bench", "data": "x"})
						<-ch
					}
				})
			}
			wg.Wait()
		})
	}
}

func newEnvB(b *testing.B) *env {
	return newEnvWith(b, envOpts{proto: session.Config{}})
}
