package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startNATS runs nats-server (cfg.NATSBin) with JetStream in dir, syncing
// every message before acknowledging it (sync_interval: always, what
// docs/architecture.md requires), and returns its client URLs once every
// server reports healthy. tether then runs on the JetStream engine
// (--nats), so the same scenarios measure both engines. One server, or a
// cluster of TETHER_BENCH_NATS_NODES (3 for the R3 cluster tether is meant
// to run on).
func startNATS(ctx context.Context, cfg *Config, pl place, dir string) (url string, stop func() error, err error) {
	n := 1
	if v := os.Getenv("TETHER_BENCH_NATS_NODES"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 5 {
			return "", nil, fmt.Errorf("TETHER_BENCH_NATS_NODES=%q: want 1 to 5", v)
		}
	}
	ns := pl.serverNS()
	ports := make([][3]int, n) // client, monitor, route
	for i := range ports {
		for j := range ports[i] {
			if ports[i][j], err = freePort(ns, pl.host); err != nil {
				return "", nil, err
			}
		}
	}
	var stops []func()
	stop = func() error {
		for _, s := range stops {
			s()
		}
		return nil
	}
	var urls []string
	for i := range n {
		conf := fmt.Sprintf("server_name: n%d\nlisten: %s:%d\nhttp: %s:%d\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n",
			i+1, pl.host, ports[i][0], pl.host, ports[i][1], filepath.Join(dir, fmt.Sprint("nats", i+1)))
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats-route://%s:%d", pl.host, ports[j][2]))
				}
			}
			conf += fmt.Sprintf("cluster {\n  name: bench\n  listen: %s:%d\n  routes: [%s]\n}\n",
				pl.host, ports[i][2], strings.Join(routes, ", "))
		}
		path := filepath.Join(dir, fmt.Sprintf("nats%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			stop()
			return "", nil, err
		}
		cmd := nsCommand(ns, cfg.NATSBin, "-c", path)
		if err := cmd.Start(); err != nil {
			stop()
			return "", nil, fmt.Errorf("nats-server: %w", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stops = append(stops, func() { cmd.Process.Kill(); <-done })
		urls = append(urls, fmt.Sprintf("nats://%s:%d", pl.host, ports[i][0]))
	}
	admin := adminClient(pl)
	deadline := time.Now().Add(60 * time.Second)
	for i := range n {
		health := fmt.Sprintf("http://%s:%d/healthz", pl.host, ports[i][1])
		for {
			resp, err := admin.Get(health)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				stop()
				return "", nil, ctx.Err()
			case <-time.After(50 * time.Millisecond): // polling its health, with a deadline
			}
			if time.Now().After(deadline) {
				stop()
				return "", nil, fmt.Errorf("nats-server n%d not healthy within 60s", i+1)
			}
		}
	}
	return strings.Join(urls, ","), stop, nil
}

// BuildNATS builds nats-server from the module version go.mod pins into
// dir, for Config.NATSBin.
func BuildNATS(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return bin, nil
}

// BuildTether builds the tether server (./cmd/tether) of the repository at
// repo into dir, for Config.TetherBin.
func BuildTether(repo, dir string) (string, error) {
	bin := filepath.Join(dir, "tether")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tether")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tether: %v\n%s", err, out)
	}
	return bin, nil
}
