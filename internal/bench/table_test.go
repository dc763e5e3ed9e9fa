package bench

import (
	"strings"
	"testing"
)

// TestTableRatioNamesItsBase: the ratio columns are of the first system
// listed to each other, and say so, whichever system comes first.
func TestTableRatioNamesItsBase(t *testing.T) {
	rs := []Result{
		{Scenario: "detection", Case: "rst", System: Centrifugo, Metrics: map[string]float64{"seconds": 0.006}},
		{Scenario: "detection", Case: "rst", System: Tether, Metrics: map[string]float64{"seconds": 0.0003}},
	}
	md := MarkdownTable("detection", rs)
	if !strings.Contains(md, "| case | metric | centrifugo | tether | centrifugo/tether |") {
		t.Errorf("header does not name centrifugo as the base of the ratio:\n%s", md)
	}
	if !strings.Contains(md, "| 20x (worse) |") {
		t.Errorf("want centrifugo/tether = 20x (worse):\n%s", md)
	}
}

// A system whose case failed in one of its runs shows "error", and no
// ratio is taken from the figures of its other runs.
func TestTableNoRatioFromAFailedCase(t *testing.T) {
	rs := []Result{
		{Scenario: "fanout", Case: "c", System: Tether, Metrics: map[string]float64{"delivered_per_s": 1000}},
		{Scenario: "fanout", Case: "c", System: Centrifugo, Metrics: map[string]float64{"delivered_per_s": 100}, Err: "publish: EOF"},
		{Scenario: "fanout", Case: "c", System: Nchan, Metrics: map[string]float64{"delivered_per_s": 500}},
	}
	md := MarkdownTable("fanout", rs)
	if want := "| c | delivered msgs/s | 1,000 | error | - | 500 | 2x (better) |"; !strings.Contains(md, want) {
		t.Errorf("want %q in:\n%s", want, md)
	}
}
