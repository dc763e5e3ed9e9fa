package session

import "iter"

// subSet is a session's subscriptions by channel. Most connections have
// one or a few: up to fewSubs they sit in a short slice, searched in
// order (as fast as a map's hash at that size), because a map of even
// one entry costs a whole group of eight slots, about 250 bytes per idle
// connection; past fewSubs a map takes over for good. The zero value is
// empty. Guarded by Session.mu.
type subSet struct {
	few  []*sub
	many map[string]*sub // nil until the set outgrew few
}

const fewSubs = 8

// get returns the subscription of channel, or nil.
func (m *subSet) get(channel string) *sub {
	if m.many != nil {
		return m.many[channel]
	}
	for _, sb := range m.few {
		if sb.channel == channel {
			return sb
		}
	}
	return nil
}

// put adds sb; its channel has no subscription in the set.
func (m *subSet) put(sb *sub) {
	if m.many == nil && len(m.few) < fewSubs {
		m.few = append(m.few, sb)
		return
	}
	if m.many == nil {
		m.many = make(map[string]*sub, 2*fewSubs)
		for _, o := range m.few {
			m.many[o.channel] = o
		}
		m.few = nil
	}
	m.many[sb.channel] = sb
}

// del removes the subscription of channel, if any.
func (m *subSet) del(channel string) {
	if m.many != nil {
		delete(m.many, channel)
		return
	}
	for i, sb := range m.few {
		if sb.channel == channel {
			last := len(m.few) - 1
			m.few[i] = m.few[last]
			m.few[last] = nil
			m.few = m.few[:last]
			if last == 0 {
				m.few = nil // an idle connection keeps no backing array
			}
			return
		}
	}
}

// len returns how many subscriptions the set holds.
func (m *subSet) len() int {
	if m.many != nil {
		return len(m.many)
	}
	return len(m.few)
}

// all yields every subscription, in no particular order. The set must
// not change meanwhile.
func (m *subSet) all() iter.Seq[*sub] {
	return func(yield func(*sub) bool) {
		if m.many != nil {
			for _, sb := range m.many {
				if !yield(sb) {
					return
				}
			}
			return
		}
		for _, sb := range m.few {
			if !yield(sb) {
				return
			}
		}
	}
}
