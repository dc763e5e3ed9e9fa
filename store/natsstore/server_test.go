package natsstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tether-run/tether/store"
)

// startServer starts an in-process nats-server with JetStream on a random
// loopback port, keeping its data under dir and syncing every write
// (sync_interval: always), and shuts it down when the test ends.
func startServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	srv := newServer(t, &server.Options{
		ServerName: "solo",
		StoreDir:   filepath.Join(dir, "jetstream"),
	})
	t.Cleanup(func() { shutdown(srv) })
	return srv
}

// newServer starts a server with opts completed by the settings every test
// server shares, and waits until it accepts clients.
func newServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	srv := launchServer(t, opts)
	if !srv.ReadyForConnections(10 * time.Second) {
		shutdown(srv)
		t.Fatal("nats-server: not ready within 10s")
	}
	return srv
}

// launchServer starts a server without waiting for it.
func launchServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host = "127.0.0.1"
	opts.Port = -1
	opts.JetStream = true
	opts.SyncAlways = true
	opts.NoLog = true
	opts.NoSigs = true
	opts.HTTPPort = 0
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	return srv
}

func shutdown(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// openStore opens a Store on the server at url with cfg, closing it when
// the test ends.
func openStore(t testing.TB, url string, cfg Config) *Store {
	t.Helper()
	cfg.URLs = url
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// serverStore is a Store together with the embedded server it alone uses:
// closing it shuts the server down too, so that a reopen on the same
// directory starts a new server on the same data, as a restarted process
// would.
type serverStore struct {
	*Store
	srv  *server.Server
	once sync.Once
}

func (s *serverStore) Close() error {
	err := s.Store.Close()
	s.once.Do(func() { shutdown(s.srv) })
	return err
}

// openServerStore starts a server on dir and opens a Store on it.
func openServerStore(t testing.TB, dir string, cfg Config) *serverStore {
	t.Helper()
	srv := newServer(t, &server.Options{ServerName: "solo", StoreDir: filepath.Join(dir, "jetstream")})
	cfg.URLs = srv.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		shutdown(srv)
		t.Fatalf("Open: %v", err)
	}
	return &serverStore{Store: s, srv: srv}
}

// clusterServers starts n in-process servers that form one JetStream
// cluster over loopback routes, and shuts them down when the test ends.
func clusterServers(t testing.TB, n int) []*server.Server {
	t.Helper()
	// JetStream clustering needs every server's routes configured at start,
	// so the route ports are picked first: the kernel hands out free ones,
	// which are released just before the servers bind them.
	routes := make([]string, n)
	for i := range routes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes[i] = "nats://" + l.Addr().String()
		l.Close()
	}
	srvs := make([]*server.Server, 0, n)
	t.Cleanup(func() {
		for _, s := range srvs {
			shutdown(s)
		}
	})
	for i := range n {
		port, err := strconv.Atoi(routes[i][strings.LastIndexByte(routes[i], ':')+1:])
		if err != nil {
			t.Fatal(err)
		}
		// A clustered server is ready for clients only once the cluster
		// has formed, so the servers start first and are waited on after.
		srvs = append(srvs, launchServer(t, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "tether-test", Host: "127.0.0.1", Port: port},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}))
	}
	for _, srv := range srvs {
		if !srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats-server %s: not ready within 20s", srv.Name())
		}
	}
	return srvs
}
