package dashboard

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tether-run/tether/jobs"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
	"github.com/tether-run/tether/store"
)

// Bounds of a Snapshot: whatever the number of connections, channels and
// jobs, one snapshot lists at most these many of each.
const (
	maxUsers     = 20  // users with the most connections
	maxConsumers = 10  // the slowest subscribed connections
	maxChannels  = 50  // the most subscribed channels
	maxSampled   = 20  // of those, channels whose rate and retention are read from the store
	maxPresent   = 10  // subscriptions listed per sampled channel
	maxLiveJobs  = 100 // jobs not final
	maxFinalJobs = 20  // latest final jobs

	// rateReadCap bounds the read that counts a channel's new messages:
	// more than this many within an interval shows as a lower bound.
	rateReadCap = 256
	// oldestEvery is how often a channel's oldest retained message is
	// looked up again.
	oldestEvery = 10 * time.Second
	// sampleTimeout bounds the store reads of one snapshot.
	sampleTimeout = 2 * time.Second
)

// Snapshot is what the dashboard shows, as GET /v1/admin/snapshot answers
// it and each event of GET /v1/admin/events carries it (docs/api.md). Its
// parts are read one after the other, each under its own lock, not at one
// instant: a connection that just arrived may be in Channels and not yet
// in Connections.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Open: the node runs without token configuration.
	Open        bool            `json:"open"`
	Connections registry.Census `json:"connections"`
	// Ends: how connections ended, in total and second by second over the
	// last registry.EndWindow.
	Ends registry.Ends `json:"ends"`
	// Consumers are the subscribed connections furthest behind.
	Consumers []session.Consumer `json:"consumers"`
	// MaxLag is the lag at which a connection ends as slow-consumer.
	MaxLag time.Duration `json:"max_lag_ns"`
	// Channels are the channels with the most subscribers on this node.
	Channels      []Channel `json:"channels"`
	OtherChannels int       `json:"other_channels"`
	Retention     Retention `json:"retention"`
	// Jobs is nil when the node has no jobs service.
	Jobs    *jobs.Overview `json:"jobs,omitempty"`
	Process Process        `json:"process"`
}

// Channel is one subscribed channel.
type Channel struct {
	session.ChannelSubscribers
	// Presence are its oldest subscriptions (sampled channels only).
	Presence []session.Present `json:"presence,omitempty"`
	// Latest and Earliest are its newest and oldest retained cursors
	// (sampled channels only).
	Latest   store.Cursor `json:"latest,omitempty"`
	Earliest store.Cursor `json:"earliest,omitempty"`
	// Rate is messages appended per second over the last interval, by any
	// node; nil when not known yet. RateAtLeast: more were appended than
	// one read counts, Rate is a lower bound.
	Rate        *float64 `json:"rate,omitempty"`
	RateAtLeast bool     `json:"rate_at_least,omitempty"`
	// Oldest is when its oldest retained message was appended.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Retention is the store's retention (zero: no bound).
type Retention struct {
	MaxAge      time.Duration `json:"max_age_ns"`
	MaxMessages int64         `json:"max_messages"`
}

// Process is a few figures of the process, from the metrics.
type Process struct {
	Goroutines float64 `json:"goroutines"`
	RSSBytes   float64 `json:"rss_bytes"`
	HeapBytes  float64 `json:"heap_bytes"`
}

// builder makes snapshots, at most one per half interval however many
// viewers ask: concurrent askers wait for the one being built.
type builder struct {
	cfg Config
	src sources

	mu      sync.Mutex
	last    []byte               // guarded by mu: the latest snapshot, encoded
	lastAt  time.Time            // guarded by mu
	samples map[string]chanState // guarded by mu: per sampled channel
}

// chanState is what the previous snapshots learnt of a channel.
type chanState struct {
	latest   store.Cursor
	at       time.Time // when latest was read
	oldest   time.Time
	oldestAt time.Time // when oldest was read
}

// sources are what a snapshot is read from (New's arguments).
type sources struct {
	core     *session.Core
	jobs     *jobs.Service // nil: no jobs section
	gatherer prometheus.Gatherer
}

func newBuilder(cfg Config, src sources) *builder {
	return &builder{cfg: cfg, src: src, samples: map[string]chanState{}}
}

// get returns the latest snapshot, encoded as one line of JSON, building
// a new one when the latest is older than half the interval.
func (b *builder) get() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.last != nil && now.Sub(b.lastAt) < b.cfg.Interval/2 {
		return b.last
	}
	s := b.buildLocked(now)
	enc, err := json.Marshal(s)
	if err != nil { // only plain types: cannot happen
		enc = []byte(`{}`)
	}
	b.last, b.lastAt = enc, now
	return enc
}

// buildLocked gathers a Snapshot. b.mu is held.
func (b *builder) buildLocked(now time.Time) *Snapshot {
	c := b.src.core
	s := &Snapshot{
		Time:        now.UTC(),
		Open:        c.Open(),
		Connections: c.Registry().Census(maxUsers),
		Ends:        c.Registry().Ends(),
		Consumers:   c.Consumers(maxConsumers),
		MaxLag:      c.Config().MaxLag,
		Retention:   Retention{MaxAge: b.cfg.Retention.MaxAge, MaxMessages: int64(b.cfg.Retention.MaxMessages)},
		Process:     b.process(),
	}
	subs, other := c.Subscribed(maxChannels)
	s.OtherChannels = other
	s.Channels = make([]Channel, len(subs))
	for i, cs := range subs {
		s.Channels[i] = Channel{ChannelSubscribers: cs}
	}
	b.sampleLocked(s.Channels[:min(len(s.Channels), maxSampled)], now)
	if b.src.jobs != nil {
		o := b.src.jobs.Overview(maxLiveJobs, maxFinalJobs)
		s.Jobs = &o
	}
	return s
}

// sampleLocked reads, for each of chans, its presence and from the store
// its bounds, its rate since the previous snapshot, and (every
// oldestEvery) its oldest retained message. b.mu is held.
func (b *builder) sampleLocked(chans []Channel, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), sampleTimeout)
	defer cancel()
	c := b.src.core
	st := c.Store()
	seen := make(map[string]bool, len(chans))
	for i := range chans {
		ch := &chans[i]
		name := ch.Channel
		seen[name] = true
		ch.Presence, _ = c.PresenceFirst(name, maxPresent)
		bounds, err := st.Bounds(ctx, name)
		if err != nil {
			continue
		}
		ch.Latest, ch.Earliest = bounds.Latest, bounds.Earliest
		prev, known := b.samples[name]
		next := chanState{latest: bounds.Latest, at: now, oldest: prev.oldest, oldestAt: prev.oldestAt}
		if known {
			n, atLeast, ok := countAfter(ctx, st, name, prev.latest, bounds.Latest)
			if secs := now.Sub(prev.at).Seconds(); ok && secs > 0 {
				r := float64(n) / secs
				ch.Rate, ch.RateAtLeast = &r, atLeast
			}
		}
		if bounds.Earliest == "" {
			next.oldest = time.Time{}
		} else if !known || now.Sub(prev.oldestAt) >= oldestEvery {
			if res, err := st.Read(ctx, name, store.Start, 1); err == nil && len(res.Messages) > 0 {
				next.oldest, next.oldestAt = res.Messages[0].Time, now
			}
		}
		ch.Oldest = next.oldest
		b.samples[name] = next
	}
	for name := range b.samples {
		if !seen[name] {
			delete(b.samples, name)
		}
	}
}

// countAfter counts the messages of channel after prev up to latest, at
// most rateReadCap (atLeast: there were more).
func countAfter(ctx context.Context, st store.Store, channel string, prev, latest store.Cursor) (n int, atLeast, ok bool) {
	if prev == latest {
		return 0, false, true
	}
	res, err := st.Read(ctx, channel, prev, rateReadCap)
	if err != nil {
		return 0, false, false
	}
	return len(res.Messages), len(res.Messages) == rateReadCap, true
}

// process reads a few figures from the Gatherer, zero when absent.
func (b *builder) process() Process {
	var p Process
	if b.src.gatherer == nil {
		return p
	}
	mfs, err := b.src.gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return p
	}
	for _, mf := range mfs {
		var dst *float64
		switch mf.GetName() {
		case "go_goroutines":
			dst = &p.Goroutines
		case "process_resident_memory_bytes":
			dst = &p.RSSBytes
		case "go_memstats_heap_inuse_bytes":
			dst = &p.HeapBytes
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			*dst += m.GetGauge().GetValue()
		}
	}
	return p
}
