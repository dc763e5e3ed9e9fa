package bench

import (
	"slices"
	"time"
)

// latencies collects durations; its quantiles are exact (sorted), which is
// affordable at the harness's sample counts (a few million at most).
type latencies []time.Duration

// quantile returns the q-quantile (0..1) by nearest rank, 0 when empty.
// It sorts l.
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))]
}

// ms converts d to milliseconds, the unit of every latency in the results.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of xs (the mean of the middle two for an even
// count), 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
