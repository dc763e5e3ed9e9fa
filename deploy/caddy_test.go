package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/netnstest"
)

// startCaddy runs caddy with deploy/caddy/Caddyfile, unchanged, in front of
// tp: the file reads its site, upstream and admin address from the
// environment, with production defaults. The site is plain HTTP on a free
// port, since Caddy's automatic HTTPS needs a public name and an ACME CA.
func startCaddy(t *testing.T, tp *tetherProc) *front {
	return startCaddyIn(t, tp, "", "127.0.0.1")
}

// startCaddyIn is startCaddy in network namespace ns ("": this one); its
// clients reach it at ip.
func startCaddyIn(t *testing.T, tp *tetherProc, ns, ip string) *front {
	t.Helper()
	if _, err := exec.LookPath("caddy"); err != nil {
		t.Skip("caddy is not installed (Debian: apt-get install caddy; scripts/test.sh installs it as root)")
	}
	dir := t.TempDir()
	port := freePort(t)
	// Copied, not rendered: the test changes nothing in the file.
	b, err := os.ReadFile("caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := inNS(ns, "caddy", "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("TETHER_SITE=http://%s:%d", siteName, port),
		"TETHER_UPSTREAM="+tp.addr,
		"CADDY_ADMIN=off",
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	logs := func() string {
		select {
		case <-exited:
			return out.String()
		default:
			return "(caddy is running; its log follows at the end of the test)"
		}
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(generous):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || os.Getenv("DEPLOY_TEST_LOGS") != "" {
			t.Logf("caddy log:\n%s", out.String())
		}
	})
	waitListening(t, ns, fmt.Sprintf("%s:%d", ip, port), exited, logs)
	return &front{name: "caddy", ip: ip, port: port, tether: tp, clientIP: clientAddr}
}

// TestCaddy runs long-poll, SSE and WebSocket through Caddy configured with
// deploy/caddy/Caddyfile, and shows what Caddy changes about the
// departures tether sees.
func TestCaddy(t *testing.T) {
	t.Parallel()
	tp := startTether(t, proxiedFlags...)
	f := startCaddy(t, tp)
	testThroughProxy(t, f, seen{
		halfCloseAnswered: false,
		halfCloseReason:   "closed",
		pollCloseReason:   "closed",
		pollResetReason:   "closed",
		wsResetReason:     "closed",
		remoteHost:        clientIP, // --trusted-proxies and X-Forwarded-For
	})
}

// TestCaddySilentClient pulls the cable of clients behind Caddy while a
// long-poll waits and a WebSocket is open (testSilent).
func TestCaddySilentClient(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("caddy"); err != nil {
		t.Skip("caddy is not installed (Debian: apt-get install caddy; scripts/test.sh installs it as root)")
	}
	pair := netnstest.Setup(t)
	tp := startTetherIn(t, pair.Server, proxiedFlags...)
	f := startCaddyIn(t, tp, pair.Server, netnstest.ServerIP)
	f.clientNS, f.clientIP = pair.Client, nil
	testSilent(t, f, pair)
}
