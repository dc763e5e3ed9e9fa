package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashCycles is how many SIGKILLs TestCrashLoop deals: 5, or
// TETHER_CRASH_CYCLES.
func crashCycles(t *testing.T) int {
	s := os.Getenv("TETHER_CRASH_CYCLES")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("TETHER_CRASH_CYCLES=%q: want a positive number", s)
	}
	return n
}

// crashPublisher publishes its messages one after the other, each with its
// own Idempotency-Key, retrying a message with the same key until it is
// acknowledged, through whichever server is up.
type crashPublisher struct {
	w     int
	acks  []acked // acknowledged, in order; owned by the publisher until wg.Wait
	tries int     // attempts that got no answer or an error
	// replays counts acknowledgements marked Idempotent-Replayed: a retry
	// whose first attempt was made but not acknowledged before the kill.
	replays int
}

// TestCrashLoop SIGKILLs the server 5 times (TETHER_CRASH_CYCLES) while
// concurrent publishers publish with idempotency keys and retry every error
// with the same key. After the last restart, every acknowledged message
// must be there exactly once, at the ID it was acknowledged with, in each
// publisher's order, and no retried publish may have appended twice.
func TestCrashLoop(t *testing.T) {
	cycles := crashCycles(t)
	dir := t.TempDir()
	const publishers, perCycle = 8, 150
	var (
		base  atomic.Pointer[string] // the server up now; nil while none is
		acks  atomic.Int64           // acknowledged publishes, all publishers
		stop  atomic.Bool            // publishers finish their message and stop
		wg    sync.WaitGroup
		pubs  = make([]*crashPublisher, publishers)
		begin = time.Now()
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range pubs {
		p := &crashPublisher{w: w}
		pubs[w] = p
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if !p.publish(t, client, &base, i) {
					return
				}
				acks.Add(1)
			}
		})
	}

	for c := range cycles {
		p := startBinary(t, dir)
		base.Store(&p.base)
		target := acks.Load() + perCycle
		waitFor(t, 30*time.Second, fmt.Sprintf("cycle %d: %d acknowledged publishes", c, target), func() bool {
			return acks.Load() >= target
		})
		base.Store(nil)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	p := startBinary(t, dir)
	base.Store(&p.base)
	stop.Store(true)
	wg.Wait() // each publisher has its last message acknowledged
	t.Logf("%d SIGKILLs, %d acknowledged publishes in %v", cycles, acks.Load(), time.Since(begin))

	got := readAll(t, p.base, "crash")
	pos := make(map[string]int, len(got))
	for i, m := range got {
		if _, dup := pos[m.data]; dup {
			t.Fatalf("message %s is in the log twice: a retry appended again", m.data)
		}
		pos[m.data] = i
	}
	var tries, replays int
	for _, pub := range pubs {
		tries += pub.tries
		replays += pub.replays
		last := -1
		for _, a := range pub.acks {
			i, ok := pos[a.data]
			switch {
			case !ok:
				t.Fatalf("acknowledged message %s (id %s) lost", a.data, a.id)
			case got[i].id != a.id:
				t.Fatalf("message %s read back with id %s; acknowledged as %s", a.data, got[i].id, a.id)
			case i <= last:
				t.Fatalf("publisher %d: message %s read back out of order", pub.w, a.data)
			}
			last = i
		}
	}
	if int64(len(got)) != acks.Load() {
		t.Fatalf("the log holds %d messages; %d were acknowledged, each retried to the end", len(got), acks.Load())
	}
	t.Logf("%d retried attempts, %d acknowledged as replays of an attempt the kill cut off", tries, replays)
}

// publish publishes message i of p until it is acknowledged, and records
// it. It returns false if the test ends first.
func (p *crashPublisher) publish(t *testing.T, client *http.Client, base *atomic.Pointer[string], i int) bool {
	data := fmt.Sprintf(`{"w":%d,"i":%d}`, p.w, i)
	key := fmt.Sprintf("%d-%d", p.w, i)
	for t.Context().Err() == nil {
		b := base.Load()
		if b == nil {
			pause(t, 5*time.Millisecond) // no server up: retry shortly
			continue
		}
		req, err := http.NewRequestWithContext(t.Context(), "POST", *b+"/v1/channels/crash/messages", strings.NewReader(data))
		if err != nil {
			t.Error(err)
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			p.tries++
			pause(t, 5*time.Millisecond)
			continue
		}
		var a struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			p.tries++
			pause(t, 5*time.Millisecond)
			continue
		}
		if resp.Header.Get("Idempotent-Replayed") == "true" {
			p.replays++
		}
		p.acks = append(p.acks, acked{a.ID, data})
		return true
	}
	return false
}

// pause waits d, or less if the test ends: a publisher's back-off between
// retries.
func pause(t *testing.T, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
	}
}
