package bench

import (
	"fmt"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	at := time.Unix(1795310556, 123456789)
	p := payload(42, at)
	if len(p) != PayloadSize {
		t.Fatalf("len = %d, want %d", len(p), PayloadSize)
	}
	for _, wrap := range []string{"%s", `{"type":"message","data":"%s"}`, `42["m","%s"]`, "data: %s"} {
		seq, sent, ok := parsePayload(fmt.Appendf(nil, wrap, p))
		if !ok || seq != 42 || !sent.Equal(at) {
			t.Errorf("%s: got %d %v %v, want 42 %v true", wrap, seq, sent, ok, at)
		}
	}
	if _, _, ok := parsePayload([]byte(`{"type":"ping","id":"s1"}`)); ok {
		t.Error("a ping parsed as a payload")
	}
}

func TestSeqCheck(t *testing.T) {
	for _, tc := range []struct {
		seqs             []int64
		want             int64
		missed, repeated int64
	}{
		{[]int64{1, 2, 3}, 3, 0, 0},
		{[]int64{1, 3}, 3, 1, 0},
		{[]int64{1, 2, 2, 3}, 3, 0, 1},
		{[]int64{2, 1}, 3, 2, 1},
		{nil, 2, 2, 0},
	} {
		var c seqCheck
		for _, s := range tc.seqs {
			c.see(s)
		}
		c.finish(tc.want)
		if c.missed != tc.missed || c.repeated != tc.repeated {
			t.Errorf("%v to %d: missed %d repeated %d, want %d %d", tc.seqs, tc.want, c.missed, c.repeated, tc.missed, tc.repeated)
		}
	}
}

func TestQuantileAndMedian(t *testing.T) {
	l := latencies{5, 1, 4, 2, 3}
	if got := l.quantile(0.5); got != 3 {
		t.Errorf("p50 = %v, want 3", got)
	}
	if got := l.quantile(1); got != 5 {
		t.Errorf("max = %v, want 5", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestNumAndRatio(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1,234,567", 0.5: "0.5", 12.345: "12.3", 0: "0"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	tr := &Result{Metrics: map[string]float64{"x": 200}}
	pr := &Result{Metrics: map[string]float64{"x": 100}}
	if got := ratio(tr, pr, metricDef{key: "x", better: "higher"}); got != "2x (better)" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(tr, pr, metricDef{key: "x", better: "lower"}); got != "2x (worse)" {
		t.Errorf("ratio = %q", got)
	}
}

func TestSumMetric(t *testing.T) {
	text := "# HELP x\ntether_connections_open{transport=\"sse\"} 3\ntether_connections_open{transport=\"websocket\"} 4\ntether_connections_opened 9\ngo_goroutines 12\n"
	if got := sumMetric(text, "tether_connections_open"); got != 7 {
		t.Errorf("sum = %v, want 7", got)
	}
	if got := sumMetric(text, "go_goroutines"); got != 12 {
		t.Errorf("goroutines = %v, want 12", got)
	}
}

// pubSeqs gives each of P publishers every P-th sequence number: every
// number from 1 to msgs exactly once, each publisher's in its order.
func TestPubSeqs(t *testing.T) {
	for _, c := range []struct{ msgs, pubs int64 }{{1, 1}, {10, 1}, {10, 3}, {7, 7}, {100, 32}} {
		ps := pubSeqs{msgs: c.msgs, pubs: c.pubs}
		seen := map[int64]bool{}
		var total int64
		for p := range int(c.pubs) {
			n := ps.count(p)
			total += n
			for k := int64(1); k <= n; k++ {
				seq := (k-1)*c.pubs + int64(p) + 1
				if gp, gk := ps.of(seq); gp != p || gk != k || seq > c.msgs || seen[seq] {
					t.Errorf("%+v: publisher %d's #%d is %d: of gives %d #%d (repeat: %v)", c, p, k, seq, gp, gk, seen[seq])
				}
				seen[seq] = true
			}
		}
		if total != c.msgs || int64(len(seen)) != c.msgs {
			t.Errorf("%+v: %d messages in all, %d distinct; want %d", c, total, len(seen), c.msgs)
		}
	}
}
