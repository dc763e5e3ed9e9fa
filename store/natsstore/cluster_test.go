package natsstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tether-run/tether/store"
)

// clusterBound bounds how long the cluster may take to form, elect a
// stream leader, or recover after losing a server.
const clusterBound = 20 * time.Second

// TestCluster runs two Stores on a 3-server JetStream cluster with the
// default replicas (3): appends through either are read and waited on
// through the other; then the server holding the stream's leadership shuts
// down, and the Stores go on reading every acknowledged message and
// appending, on the two servers left.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	srvs := clusterServers(t, 3)
	// No wait for the cluster to elect its meta leader: Open waits for it.
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	all := strings.Join(urls, ",")
	// a talks to n1 first, b to n2 first; both know every server.
	a := openStore(t, all, Config{})
	b := openStore(t, strings.Join([]string{urls[1], urls[2], urls[0]}, ","), Config{Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if !a.clustered {
		t.Fatal("store on a JetStream cluster does not know it is clustered")
	}
	info, err := a.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("stream replicas = %d; want the clustered default 3", info.Config.Replicas)
	}

	var acked []store.AppendResult
	appendOn := func(s *Store, data string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), clusterBound)
		defer cancel()
		r, err := s.Append(ctx, "orders.eu", []byte(data), store.AppendOptions{IdempotencyKey: data})
		if err != nil {
			t.Fatalf("Append(%s): %v", data, err)
		}
		acked = append(acked, r)
	}
	for i := range 10 {
		appendOn([]*Store{a, b}[i%2], fmt.Sprint("before-", i))
	}
	checkAll(t, b, acked)

	// b waits after the latest; a appends; b wakes.
	woke := make(chan error, 1)
	wctx, cancel := context.WithTimeout(t.Context(), clusterBound)
	defer cancel()
	after := acked[len(acked)-1].ID // read here: appendOn grows acked meanwhile
	go func() { woke <- b.Wait(wctx, "orders.eu", after) }()
	appendOn(a, "wake")
	if err := receive(t, woke, wakeBound, "Wait on b after an append on a"); err != nil {
		t.Fatal(err)
	}

	// Shut down the stream leader: the others elect a new one, and every
	// acknowledged message is still there.
	leader := streamLeader(t, a)
	var victim *server.Server
	for _, s := range srvs {
		if s.Name() == leader {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is none of the servers", leader)
	}
	shutdown(victim)
	woke = make(chan error, 1)
	wctx2, cancel3 := context.WithTimeout(t.Context(), 2*clusterBound)
	defer cancel3()
	after = acked[len(acked)-1].ID
	var wokeAt time.Time // written before the send on woke, read after it
	go func() {
		err := b.Wait(wctx2, "orders.eu", after)
		wokeAt = time.Now()
		woke <- err
	}()
	killed := time.Now()
	appendOn(a, "after-0")
	acked0 := time.Now()
	for i := 1; i < 5; i++ {
		appendOn([]*Store{a, b}[i%2], fmt.Sprint("after-", i))
	}
	// b's watch may have lived on the lost server; it comes back and
	// delivers what it missed.
	if err := receive(t, woke, clusterBound, "Wait on b across the failover"); err != nil {
		t.Fatal(err)
	}
	// A figure for docs/benchmarks.md, not a check: the machine's load
	// decides it.
	t.Logf("after the leader's shutdown: first append acknowledged in %v; Wait on b woke %v after that",
		acked0.Sub(killed).Round(time.Millisecond), wokeAt.Sub(acked0).Round(time.Microsecond))
	checkAll(t, a, acked)
	checkAll(t, b, acked)
	// A retried append is still a duplicate after the failover: the dedup
	// state was replicated.
	ctx, cancel2 := context.WithTimeout(t.Context(), clusterBound)
	defer cancel2()
	dup, err := b.Append(ctx, "orders.eu", []byte("x"), store.AppendOptions{IdempotencyKey: "before-3"})
	if err != nil || !dup.Duplicate || dup.ID != acked[3].ID {
		t.Fatalf("retried append after failover = %+v, %v; want duplicate of %q", dup, err, acked[3].ID)
	}
	// And conditional appends still have one winner.
	raceRounds(t, []*Store{a, b}, 2, 3)
}

// checkAll fails t unless s reads exactly the acknowledged messages.
func checkAll(t *testing.T, s *Store, acked []store.AppendResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clusterBound)
	defer cancel()
	r, err := s.Read(ctx, "orders.eu", store.Start, 1000)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(r.Messages) != len(acked) || r.Gap {
		t.Fatalf("Read = %d messages (gap %v); want the %d acknowledged", len(r.Messages), r.Gap, len(acked))
	}
	for i, m := range r.Messages {
		if m.ID != acked[i].ID || !m.Time.Equal(acked[i].Time) {
			t.Fatalf("message %d = %q at %v; want %q at %v", i, m.ID, m.Time, acked[i].ID, acked[i].Time)
		}
	}
}

func streamLeader(t *testing.T, s *Store) string {
	t.Helper()
	info, err := s.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream has no leader: %+v", info.Cluster)
	}
	return info.Cluster.Leader
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition against a deadline
	}
}

func receive(t *testing.T, c <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		return nil
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
