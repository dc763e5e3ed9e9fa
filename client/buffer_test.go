package client

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func msg(ch, cursor, data string) Event {
	return Event{Kind: EventMessage, Channel: ch, Cursor: cursor, Data: json.RawMessage(data)}
}

// describe renders events compactly: "a:1", "a:dropped(2 overflow)".
func describe(evs []Event) string {
	var s []string
	for _, ev := range evs {
		switch ev.Kind {
		case EventDropped:
			s = append(s, ev.Channel+":dropped("+itoa(ev.Dropped)+" "+ev.DropReason+")")
		default:
			s = append(s, ev.Channel+":"+ev.Cursor)
		}
	}
	return strings.Join(s, " ")
}

func TestUnhandled(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		add     *Event        // hold this event at t0+at
		expire  bool          // expire at t0+at
		at      time.Duration // when
		take    string        // take this channel's events
		want    string        // take's result (describe)
		drops   []Dropped     // what add or expire reports
		wantLen int
	}
	ev := func(ch, c, d string) *Event { e := msg(ch, c, d); return &e }
	tests := []struct {
		name       string
		maxN, maxB int
		ttl        time.Duration
		steps      []step
	}{
		{"replay in order, per channel", 10, 100, time.Minute, []step{
			{add: ev("a", "1", "1"), wantLen: 1},
			{add: ev("b", "1", "1"), wantLen: 2},
			{add: ev("a", "2", "2"), wantLen: 3},
			{take: "a", want: "a:1 a:2", wantLen: 1},
			{take: "a", want: "", wantLen: 1},
			{take: "b", want: "b:1", wantLen: 0},
		}},
		{"count bound drops the oldest", 2, 100, time.Minute, []step{
			{add: ev("a", "1", "1"), wantLen: 1},
			{add: ev("b", "1", "1"), wantLen: 2},
			{add: ev("a", "2", "2"), drops: []Dropped{{Channel: "a", Reason: DropOverflow, Messages: 1, Bytes: 1, FirstCursor: "1", LastCursor: "1"}}, wantLen: 2},
			{add: ev("a", "3", "3"), drops: []Dropped{{Channel: "b", Reason: DropOverflow, Messages: 1, Bytes: 1, FirstCursor: "1", LastCursor: "1"}}, wantLen: 2},
			{take: "a", want: "a:dropped(1 overflow) a:2 a:3", wantLen: 0},
			{take: "b", want: "b:dropped(1 overflow)"},
		}},
		{"byte bound", 100, 5, time.Minute, []step{
			{add: ev("a", "1", `"xx"`), wantLen: 1},
			{add: ev("a", "2", `"yy"`), drops: []Dropped{{Channel: "a", Reason: DropOverflow, Messages: 1, Bytes: 4, FirstCursor: "1", LastCursor: "1"}}, wantLen: 1},
			{add: ev("a", "3", `"too long"`), drops: []Dropped{{Channel: "a", Reason: DropOverflow, Messages: 1, Bytes: 10, FirstCursor: "3", LastCursor: "3"}}, wantLen: 1},
			{take: "a", want: "a:dropped(2 overflow) a:2"},
		}},
		{"ttl", 100, 100, time.Second, []step{
			{add: ev("a", "1", "1"), wantLen: 1},
			{at: 500 * time.Millisecond, add: ev("a", "2", "2"), wantLen: 2},
			{at: 999 * time.Millisecond, expire: true, wantLen: 2},
			{at: time.Second, expire: true, drops: []Dropped{{Channel: "a", Reason: DropExpired, Messages: 1, Bytes: 1, FirstCursor: "1", LastCursor: "1"}}, wantLen: 1},
			{at: 2 * time.Second, expire: true, drops: []Dropped{{Channel: "a", Reason: DropExpired, Messages: 1, Bytes: 1, FirstCursor: "2", LastCursor: "2"}}},
			{take: "a", want: "a:dropped(2 expired)"},
			{take: "a", want: ""},
		}},
		{"take of another channel leaves it", 1, 100, time.Minute, []step{
			{add: ev("a", "1", "1"), wantLen: 1},
			{take: "x", want: "", wantLen: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnhandled(tt.maxN, tt.maxB, tt.ttl)
			for i, s := range tt.steps {
				var drops []Dropped
				switch {
				case s.add != nil:
					drops = u.add(*s.add, t0.Add(s.at))
				case s.expire:
					drops = u.expire(t0.Add(s.at))
				default:
					if got := describe(u.take(s.take)); got != s.want {
						t.Fatalf("step %d: take(%s) = %q, want %q", i, s.take, got, s.want)
					}
				}
				if !slices.Equal(drops, s.drops) {
					t.Fatalf("step %d: dropped %+v, want %+v", i, drops, s.drops)
				}
				if u.len() != s.wantLen {
					t.Fatalf("step %d: %d held, want %d", i, u.len(), s.wantLen)
				}
			}
		})
	}
}

func TestUnhandledExpiryOrder(t *testing.T) {
	u := newUnhandled(10, 100, time.Second)
	t0 := time.Unix(0, 0)
	if _, ok := u.nextExpiry(); ok {
		t.Fatal("nextExpiry of an empty buffer")
	}
	u.add(msg("a", "1", "1"), t0)
	u.add(msg("a", "2", "2"), t0.Add(time.Second/2))
	if at, ok := u.nextExpiry(); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("nextExpiry = %v, %v; want %v", at, ok, t0.Add(time.Second))
	}
}
