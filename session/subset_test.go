package session

import (
	"slices"
	"strconv"
	"testing"
)

// TestSubSet: the set answers like a map through its growth past fewSubs
// and back down, whatever the order of deletes.
func TestSubSet(t *testing.T) {
	for _, n := range []int{1, fewSubs - 1, fewSubs, fewSubs + 1, 3 * fewSubs} {
		var m subSet
		want := map[string]*sub{}
		check := func(step string) {
			t.Helper()
			if m.len() != len(want) {
				t.Fatalf("n=%d %s: len %d, want %d", n, step, m.len(), len(want))
			}
			var got []string
			for sb := range m.all() {
				got = append(got, sb.channel)
				if want[sb.channel] != sb {
					t.Fatalf("n=%d %s: all yielded %q, not in the set", n, step, sb.channel)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("n=%d %s: all yielded %v, want %d entries", n, step, got, len(want))
			}
			for ch, sb := range want {
				if m.get(ch) != sb {
					t.Fatalf("n=%d %s: get(%q) = %v, want %v", n, step, ch, m.get(ch), sb)
				}
			}
			if m.get("absent") != nil {
				t.Fatalf("n=%d %s: get of an absent channel is not nil", n, step)
			}
		}
		for i := range n {
			sb := &sub{channel: "c" + strconv.Itoa(i)}
			m.put(sb)
			want[sb.channel] = sb
		}
		check("after puts")
		order := make([]string, 0, n)
		for ch := range want {
			order = append(order, ch)
		}
		slices.Sort(order)
		for i, ch := range order {
			if i%2 == 1 {
				continue // every other one first, then the rest
			}
			m.del(ch)
			delete(want, ch)
		}
		m.del("absent")
		check("after half the deletes")
		for ch := range want {
			m.del(ch)
			delete(want, ch)
		}
		check("after all deletes")
		if m.many == nil && m.few != nil {
			t.Fatalf("n=%d: an empty set keeps a backing array", n)
		}
	}
}
