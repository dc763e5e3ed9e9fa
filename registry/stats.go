package registry

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/tether-run/tether/conn"
)

// This file holds the Registry's read-only summaries for an operator's
// view (the admin dashboard): who is connected now (Census), and how
// connections ended, in total and second by second (Ends). Both are
// bounded in size whatever the number of connections.

// EndWindow is how far back Ends keeps per-second end counts.
const EndWindow = 5 * time.Minute

const endSlots = int(EndWindow / time.Second)

// endStats counts connection ends: totals by transport and reason since
// the Registry was made, and a ring of one slot per second over
// EndWindow, by reason. mu is a leaf lock, taken once per end.
type endStats struct {
	mu     sync.Mutex
	totals map[endKey]uint64 // guarded by mu
	slots  [endSlots]endSlot // guarded by mu; slot i holds the second sec with sec%endSlots == i
}

type endKey struct {
	t Transport
	r conn.Reason
}

type endSlot struct {
	sec    int64                  // Unix second the counts are for; 0: unused
	counts map[conn.Reason]uint32 // reused when the slot is recycled
}

// add counts one end at now.
func (e *endStats) add(t Transport, r conn.Reason, now time.Time) {
	sec := now.Unix()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.totals == nil {
		e.totals = map[endKey]uint64{}
	}
	e.totals[endKey{t, r}]++
	s := &e.slots[int(sec%int64(endSlots))]
	if s.sec != sec {
		s.sec = sec
		if s.counts == nil {
			s.counts = map[conn.Reason]uint32{}
		}
		clear(s.counts)
	}
	s.counts[r]++
}

// EndCount is how many connections of one transport ended with one
// reason since the Registry was made.
type EndCount struct {
	Transport Transport   `json:"transport"`
	Reason    conn.Reason `json:"reason"`
	Count     uint64      `json:"count"`
}

// EndSecond is how many connections ended in one second, by reason.
type EndSecond struct {
	// Time is the start of the second.
	Time    time.Time              `json:"time"`
	Reasons map[conn.Reason]uint32 `json:"reasons"`
}

// Ends is how connections ended: Totals since the Registry was made,
// ordered by transport then reason, and Recent, the seconds within
// EndWindow of now that had any end, oldest first.
type Ends struct {
	Totals []EndCount  `json:"totals"`
	Recent []EndSecond `json:"recent"`
}

// Ends reports how connections ended. It copies counters under one short
// lock: its size is bounded by the number of transports and reasons and
// by EndWindow, never by the number of connections.
func (r *Registry) Ends() Ends {
	now := r.cfg.Now().Unix()
	e := &r.ends
	out := Ends{Totals: []EndCount{}, Recent: []EndSecond{}}
	e.mu.Lock()
	for k, n := range e.totals {
		out.Totals = append(out.Totals, EndCount{Transport: k.t, Reason: k.r, Count: n})
	}
	for _, s := range e.slots {
		if s.sec == 0 || s.sec > now || now-s.sec >= int64(endSlots) || len(s.counts) == 0 {
			continue
		}
		out.Recent = append(out.Recent, EndSecond{Time: time.Unix(s.sec, 0).UTC(), Reasons: cloneCounts(s.counts)})
	}
	e.mu.Unlock()
	slices.SortFunc(out.Totals, func(a, b EndCount) int {
		return cmp.Or(cmp.Compare(a.Transport, b.Transport), cmp.Compare(a.Reason, b.Reason))
	})
	slices.SortFunc(out.Recent, func(a, b EndSecond) int { return a.Time.Compare(b.Time) })
	return out
}

func cloneCounts(m map[conn.Reason]uint32) map[conn.Reason]uint32 {
	c := make(map[conn.Reason]uint32, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// UserCount is one user's live connections, by transport.
type UserCount struct {
	// Sub is the user id of the connections' token ("" in open mode).
	Sub         string            `json:"sub"`
	Total       int               `json:"total"`
	ByTransport map[Transport]int `json:"by_transport"`
}

// Census counts the live connections (open or closing).
type Census struct {
	Total       int               `json:"total"`
	ByTransport map[Transport]int `json:"by_transport"`
	// Users are the users with the most connections, most first (ties by
	// sub), at most the number Census was asked for.
	Users []UserCount `json:"users"`
	// OtherUsers is how many users were left out of Users.
	OtherUsers int `json:"other_users"`
}

// Census counts the live connections by transport and by user, listing
// the topUsers users with the most. It copies the live set under the
// Registry's lock and counts outside it, reading only what never changes
// on a Handle.
func (r *Registry) Census(topUsers int) Census {
	r.mu.Lock()
	hs := make([]*Handle, 0, len(r.conns))
	for _, h := range r.conns {
		hs = append(hs, h)
	}
	r.mu.Unlock()
	c := Census{Total: len(hs), ByTransport: map[Transport]int{}, Users: []UserCount{}}
	users := map[string]*UserCount{}
	for _, h := range hs {
		t := h.oi.Transport
		c.ByTransport[t]++
		u := users[h.oi.Sub]
		if u == nil {
			u = &UserCount{Sub: h.oi.Sub, ByTransport: map[Transport]int{}}
			users[h.oi.Sub] = u
		}
		u.Total++
		u.ByTransport[t]++
	}
	for _, u := range users {
		c.Users = append(c.Users, *u)
	}
	slices.SortFunc(c.Users, func(a, b UserCount) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Sub, b.Sub))
	})
	if topUsers >= 0 && len(c.Users) > topUsers {
		c.OtherUsers = len(c.Users) - topUsers
		c.Users = c.Users[:topUsers]
	}
	return c
}
