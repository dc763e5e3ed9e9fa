package ws_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/session"
)

// TestSessionReconnectRace: clients with session keys drop their
// connection and reconnect at once, over and over, so that the new
// connection's upgrade races the old one's end. The test fails if a
// connection is ever admitted (OnConnect) while the disconnect cleanup
// (OnDisconnect) of its key's previous connection has not returned, i.e.
// if cleanup could run after re-admission.
func TestSessionReconnectRace(t *testing.T) {
	const keys, rounds = 5, 20
	var mu sync.Mutex
	live := map[string]int{} // guarded by mu; per key, connections admitted and not yet cleaned up
	var admitted, cleaned sync.WaitGroup
	admitted.Add(keys * rounds)
	cleaned.Add(keys * rounds)
	rc := registry.Config{
		OnConnect: func(i registry.Info) {
			mu.Lock()
			defer mu.Unlock()
			if live[i.SessionKey] > 0 {
				t.Errorf("session %s: a connection admitted before its predecessor's cleanup returned", i.SessionKey)
			}
			live[i.SessionKey]++
			admitted.Done()
		},
		OnDisconnect: func(i registry.Info, _ conn.Reason) {
			// Cleanup that takes a while widens the window a wrong order
			// would show in. Work being simulated, not synchronisation.
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			live[i.SessionKey]--
			mu.Unlock()
			cleaned.Done()
		},
	}
	e := newEnvRC(t, session.Config{}, conn.KeepAlive{}, "", rc)
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			url := fmt.Sprintf("%s?session=k%d", e.url, k)
			prev := connect(t, url, true)
			admittedOK(t, prev)
			for range rounds - 1 {
				// Drop the old connection and dial the new one at once.
				go prev.c.CloseNow()
				next := connect(t, url, true)
				admittedOK(t, next)
				prev = next
			}
			prev.c.CloseNow()
		})
	}
	wg.Wait()
	waitGroup(t, &admitted, "every connection admitted")
	waitGroup(t, &cleaned, "every cleanup")
}

// admittedOK checks that cl was admitted: a ping request is answered.
func admittedOK(t *testing.T, cl *client) {
	t.Helper()
	if f := cl.Request(map[string]any{"id": "p", "type": "ping"}); f.Str("type") != "pong" {
		t.Errorf("got %v, want pong", f)
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
