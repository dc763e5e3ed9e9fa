package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startTether runs a tether binary (cfg.TetherBin, or cfg.TetherBeforeBin
// for TetherBefore) with its defaults, JSON logs, the data directory under
// dir and the framed protocol on TCP too. Its "connection ended" log lines
// are its departure reports.
func startTether(ctx context.Context, cfg *Config, sys System, pl place, dir string) (*instance, error) {
	bin := cfg.TetherBin
	if sys == TetherBefore {
		bin = cfg.TetherBeforeBin
	}
	args := []string{"serve", "--addr", net.JoinHostPort(pl.host, "0"), "--tcp-addr", net.JoinHostPort(pl.host, "0"),
		"--data", filepath.Join(dir, "data"), "--log-format", "json"}
	if sys != TetherBefore && !net.ParseIP(pl.host).IsLoopback() {
		// A namespace's address is not loopback: a tether with no token
		// configuration refuses it unless told it is meant (builds from
		// before access control have no such flag).
		args = append(args, "--insecure")
	}
	args = append(args, cfg.TetherArgs...)
	stopNATS := func() error { return nil }
	if cfg.NATSBin != "" {
		url, stop, err := startNATS(ctx, cfg, pl, dir)
		if err != nil {
			return nil, err
		}
		args, stopNATS = append(args, "--nats", url), stop
	}
	cmd := nsCommand(pl.serverNS(), bin, args...)
	in := &instance{sys: sys, admin: adminClient(pl), ends: newEndLog()}
	addr := make(chan string, 1)
	tcpAddr := make(chan string, 1)
	stop, err := startProcess(cmd, false, func(line []byte, at time.Time) {
		if bytes.Contains(line, []byte(`"connection ended"`)) {
			var l struct{ Remote, Reason string }
			if json.Unmarshal(line, &l) == nil {
				in.ends.add(l.Remote, l.Reason, at)
			}
			return
		}
		for msg, c := range map[string]chan string{`"msg":"listening"`: addr, `"msg":"listening for TCP"`: tcpAddr} {
			if bytes.Contains(line, []byte(msg)) {
				var l struct{ Addr string }
				if json.Unmarshal(line, &l) == nil {
					select {
					case c <- l.Addr:
					default:
					}
				}
			}
		}
	})
	if err != nil {
		stopNATS()
		return nil, err
	}
	in.pid = cmd.Process.Pid
	in.stop = func() error { return errors.Join(stop(), stopNATS()) }
	timeout := time.After(20 * time.Second)
	for in.addr == "" || in.tcpAddr == "" {
		select {
		case in.addr = <-addr:
		case in.tcpAddr = <-tcpAddr:
		case <-timeout:
			in.stop()
			return nil, fmt.Errorf("%s did not log its HTTP and TCP addresses within 20s", bin)
		case <-ctx.Done():
			in.stop()
			return nil, ctx.Err()
		}
	}
	return in, nil
}

// startNchan runs nginx with bench/peers/nchan/nginx.conf through
// scripts/peers/nchan.sh. nginx daemonizes: its master's pid is in the pid
// file, and its workers are the master's children.
func startNchan(ctx context.Context, cfg *Config, pl place, dir string) (*instance, error) {
	script := filepath.Join(cfg.RepoDir, "scripts/peers/nchan.sh")
	port, err := freePort(pl.serverNS(), pl.host)
	if err != nil {
		return nil, err
	}
	cmd := nsCommand(pl.serverNS(), script, "start", dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "NCHAN_LISTEN="+pl.host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s start: %v: %s", script, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return nil, fmt.Errorf("%s start printed no pid", script)
	}
	pid, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		return nil, fmt.Errorf("%s start: pid %q: %w", script, out, err)
	}
	in := &instance{sys: Nchan, addr: net.JoinHostPort(pl.host, strconv.Itoa(port)), admin: adminClient(pl), pid: pid}
	in.stop = func() error {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("%s stop: %v: %s", script, err, out)
		}
		return nil
	}
	return in, nil
}

// startSocketIO runs node bench/peers/socketio/server.js, whose stdout
// reports its port and every disconnect with its reason.
func startSocketIO(ctx context.Context, cfg *Config, pl place, dir string) (*instance, error) {
	js := filepath.Join(cfg.RepoDir, "bench/peers/socketio/server.js")
	cmd := nsCommand(pl.serverNS(), "node", js)
	cmd.Env = append(os.Environ(), "HOST="+pl.host, "PORT=0")
	cmd.Dir = dir
	in := &instance{sys: SocketIO, admin: adminClient(pl), ends: newEndLog()}
	port := make(chan int, 1)
	stop, err := startProcess(cmd, true, func(line []byte, at time.Time) {
		var l struct {
			Event, Reason, Remote string
			Port                  int
		}
		if json.Unmarshal(line, &l) != nil {
			return
		}
		switch l.Event {
		case "disconnect":
			in.ends.add(strings.TrimPrefix(l.Remote, "::ffff:"), l.Reason, at)
		case "listening":
			select {
			case port <- l.Port:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	in.pid, in.stop = cmd.Process.Pid, stop
	select {
	case p := <-port:
		in.addr = net.JoinHostPort(pl.host, strconv.Itoa(p))
		return in, nil
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	stop()
	return nil, fmt.Errorf("socket.io server did not report its port within 20s")
}
