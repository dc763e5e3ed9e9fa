package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startNATS runs a single-node nats-server (cfg.NATSBin) with JetStream in
// dir, syncing every message before acknowledging it (sync_interval:
// always, what docs/architecture.md requires), and returns its client URL
// once it reports healthy. tether then runs on the JetStream engine
// (--nats), so the same scenarios measure both engines.
func startNATS(ctx context.Context, cfg *Config, pl place, dir string) (url string, stop func() error, err error) {
	ns := pl.serverNS()
	client, err := freePort(ns, pl.host)
	if err != nil {
		return "", nil, err
	}
	monitor, err := freePort(ns, pl.host)
	if err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf("listen: %s:%d\nhttp: %s:%d\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n",
		pl.host, client, pl.host, monitor, filepath.Join(dir, "nats"))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	cmd := nsCommand(ns, cfg.NATSBin, "-c", path)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("nats-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() error {
		cmd.Process.Kill()
		<-done
		return nil
	}
	admin := adminClient(pl)
	health := fmt.Sprintf("http://%s:%d/healthz", pl.host, monitor)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := admin.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return fmt.Sprintf("nats://%s:%d", pl.host, client), stop, nil
			}
		}
		select {
		case <-done:
			return "", nil, fmt.Errorf("nats-server exited: %v", cmd.ProcessState)
		case <-ctx.Done():
			stop()
			return "", nil, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling its health, with a deadline
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("nats-server not healthy within 20s")
		}
	}
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
