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
