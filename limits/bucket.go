package limits

import (
	"container/list"
	"math"
	"sync"
	"time"
)

// RateLimiter is a token bucket per key (a user's sub): each key may do
// Rate operations per second on average and Burst at once. It keeps at
// most MaxKeys buckets: a bucket that has refilled to Burst is the same
// as no bucket, so idle buckets are dropped as they are met at the cold
// end of an LRU list; past MaxKeys the least recently used bucket is
// dropped even if not yet full (that key gets a fresh burst: the only
// cost of the bound). Safe for concurrent use.
type RateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // guarded by mu; values are *bucket
	lru     *list.List               // guarded by mu; front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter of rate (> 0) per second with the
// given burst (at least 1), keeping at most maxKeys (at least 1)
// buckets. now nil means time.Now.
func NewRateLimiter(rate float64, burst, maxKeys int, now func() time.Time) *RateLimiter {
	burst, maxKeys = max(burst, 1), max(maxKeys, 1)
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{
		rate: rate, burst: float64(burst), max: maxKeys, now: now,
		buckets: map[string]*list.Element{}, lru: list.New(),
	}
}

// Allow takes one token from key's bucket. When the bucket is empty it
// takes nothing and returns false and how long until a token is there
// (for Retry-After).
func (r *RateLimiter) Allow(key string) (ok bool, wait time.Duration) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evictIdleLocked(now) // first: evicting key's own full bucket loses nothing
	var b *bucket
	if el, found := r.buckets[key]; found {
		b = el.Value.(*bucket)
		b.tokens = r.level(b, now)
		b.last = now
		r.lru.MoveToFront(el)
	} else {
		b = &bucket{key: key, tokens: r.burst, last: now}
		r.buckets[key] = r.lru.PushFront(b)
		for r.lru.Len() > r.max {
			r.removeLocked(r.lru.Back()) // never b: it is at the front and max >= 1
		}
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	secs := (1 - b.tokens) / r.rate
	return false, time.Duration(math.Ceil(secs * float64(time.Second)))
}

// level is b's token count at now.
func (r *RateLimiter) level(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed < 0 {
		elapsed = 0 // the clock went back: refill nothing
	}
	return math.Min(r.burst, b.tokens+elapsed*r.rate)
}

// evictIdleLocked drops up to two full buckets from the cold end. Two
// per call keeps eviction ahead of insertion (at most one per call)
// without a sweeper goroutine.
func (r *RateLimiter) evictIdleLocked(now time.Time) {
	for range 2 {
		el := r.lru.Back()
		if el == nil || r.level(el.Value.(*bucket), now) < r.burst {
			break
		}
		r.removeLocked(el)
	}
}

func (r *RateLimiter) removeLocked(el *list.Element) {
	delete(r.buckets, el.Value.(*bucket).key)
	r.lru.Remove(el)
}

// Len is the number of buckets kept.
func (r *RateLimiter) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}
