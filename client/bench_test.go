package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkPublish measures durable publishes through the client against
// the real binary: one channel (sent one at a time, in order), and many
// goroutines on their own channels (in flight together; the server shares
// fsyncs between them).
//
//	go test -run XXX -bench Publish -benchtime 2000x ./client/
func BenchmarkPublish(b *testing.B) {
	srv := startServer(b)
	c := dial(b, srv.ws(), Config{})
	ctx := context.Background()
	b.Run("one-channel", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := c.Publish(ctx, "bench", i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("channel-per-goroutine", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			ch := fmt.Sprintf("bench-%d", n.Add(1))
			for i := 0; pb.Next(); i++ {
				if _, err := c.Publish(ctx, ch, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
