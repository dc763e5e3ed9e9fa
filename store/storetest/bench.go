package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/tether-run/tether/store"
)

// AppendSpread appends n copies of data to s, spread evenly over
// publishers goroutines, publisher p appending to channel(p), and returns
// once all are done. A failed append is reported on tb and ends its
// publisher. The engines' benchmarks use it so that their figures measure
// the same load.
func AppendSpread(tb testing.TB, s store.Store, publishers, n int, channel func(p int) string, data []byte) {
	var wg sync.WaitGroup
	for p := range publishers {
		share := n / publishers
		if p < n%publishers {
			share++
		}
		wg.Go(func() {
			ch := channel(p)
			for range share {
				if _, err := s.Append(context.Background(), ch, data, store.AppendOptions{}); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
