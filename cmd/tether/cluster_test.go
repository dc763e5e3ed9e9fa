package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildNATS builds nats-server from the version go.mod pins, once per test
// binary: the cluster test runs real server processes, not the embedded one.
var buildNATS = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tether-nats-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return bin, nil
})

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name                   string
	client, route, monitor int
	cmd                    *exec.Cmd
	done                   chan struct{}
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.client) }

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// startNATSCluster starts size nats-server processes clustered over
// loopback, with JetStream syncing every write to disk before it
// acknowledges it (sync_interval: always), and returns once every node
// reports JetStream healthy.
func startNATSCluster(t *testing.T, size int) []*natsNode {
	t.Helper()
	bin, err := buildNATS()
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3*size)
	nodes := make([]*natsNode, size)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), client: ports[3*i], route: ports[3*i+1], monitor: ports[3*i+2]}
	}
	root := t.TempDir()
	for _, n := range nodes {
		var routes []string
		for _, o := range nodes {
			if o != n {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.route))
			}
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: tether-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.name, n.client, n.monitor, filepath.Join(root, n.name), n.route, strings.Join(routes, ", "))
		path := filepath.Join(root, n.name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n.cmd = exec.Command(bin, "-c", path)
		n.cmd.Stdout, n.cmd.Stderr = nil, nil // their logs would drown the test's
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n.done = make(chan struct{})
		go func() { n.cmd.Wait(); close(n.done) }()
		t.Cleanup(func() {
			n.cmd.Process.Kill()
			<-n.done
		})
	}
	for _, n := range nodes {
		url := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor)
		waitFor(t, 60*time.Second, n.name+" JetStream healthy", func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return nodes
}

// streamLeader asks a node's monitoring endpoint which server leads the
// stream: the node whose death forces a leader election.
func streamLeader(t *testing.T, via *natsNode, stream string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?streams=true", via.monitor))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string
				Cluster struct{ Leader string }
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		t.Fatal(err)
	}
	for _, a := range jsz.Accounts {
		for _, st := range a.Streams {
			if st.Name == stream && st.Cluster.Leader != "" {
				return st.Cluster.Leader
			}
		}
	}
	t.Fatalf("no leader of stream %s reported by %s", stream, via.name)
	return ""
}

// startTetherOnNATS starts a tether node over the cluster, retrying while
// the cluster elects its JetStream leaders (the node exits if it cannot
// create its stream).
func startTetherOnNATS(t *testing.T, nats []*natsNode) *proc {
	t.Helper()
	var urls []string
	for _, n := range nats {
		urls = append(urls, n.url())
	}
	return startBinary(t, t.TempDir(), "--nats", strings.Join(urls, ","))
}

// clusterSub is one subscriber of the cluster test: it follows a channel
// over one transport on one tether node, and moves to the other node, with
// its cursor, when its node dies.
type clusterSub struct {
	name   string
	follow transportClient

	mu   sync.Mutex
	last string
	got  map[string]int // cursor → times received
}

func (s *clusterSub) received(cursor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[cursor]++
	s.last = cursor
}

func (s *clusterSub) missing(acked []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var miss []string
	for _, c := range acked {
		if s.got[c] == 0 {
			miss = append(miss, c)
		}
	}
	return miss
}

// TestClusterLosesNothing runs 3 NATS nodes and 2 tether nodes over them;
// publishers and long-poll, SSE and WebSocket subscribers are spread over
// both tether nodes. Mid-run one NATS node and one tether node are
// SIGKILLed. Every acknowledged message must reach every subscriber (those
// of the killed node resume on the other one with their cursor), none
// twice.
func TestClusterLosesNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("cluster test runs process trees on Linux only")
	}
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const (
		channel      = "cluster"
		publishers   = 4
		perPublisher = 150
		killAt       = 50 // messages published by publisher 0 before the kills
		subsPerKind  = 2
	)
	natsNodes := startNATSCluster(t, 3)
	nodes := []*proc{startTetherOnNATS(t, natsNodes), startTetherOnNATS(t, natsNodes)}

	var aliveMu sync.Mutex
	alive := []bool{true, true}
	// node picks the preferred node if it is alive, else the other one.
	node := func(prefer int) *proc {
		aliveMu.Lock()
		defer aliveMu.Unlock()
		if alive[prefer] {
			return nodes[prefer]
		}
		return nodes[1-prefer]
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()

	kinds := []struct {
		name   string
		follow transportClient
	}{{"long-poll", followLongPoll}, {"sse", followSSE}, {"ws", followWS}}
	var subs []*clusterSub
	var subsWG sync.WaitGroup
	for home := range nodes {
		for _, k := range kinds {
			for i := range subsPerKind {
				s := &clusterSub{name: fmt.Sprintf("%s-%d@node%d", k.name, i, home), follow: k.follow, last: "0", got: map[string]int{}}
				subs = append(subs, s)
				subsWG.Go(func() {
					for subCtx.Err() == nil {
						s.mu.Lock()
						after := s.last
						s.mu.Unlock()
						// A dead node refuses connections; the error sends the
						// subscriber round the loop to the live one.
						if _, err := s.follow(subCtx, node(home), channel, after, s.received); err != nil {
							select { // back off before the retry, as a real client would
							case <-subCtx.Done():
							case <-time.After(50 * time.Millisecond):
							}
						}
					}
				})
			}
		}
	}
	waitFor(t, 30*time.Second, "subscribers connected", func() bool {
		return countConnections(nodes[0]) >= 2*subsPerKind && countConnections(nodes[1]) >= 2*subsPerKind
	})

	// Publishers alternate between the nodes. A publish that gets no answer
	// is retried with the same idempotency key on whichever node is alive,
	// so it lands once or is reported as never acknowledged. A node that
	// answers must answer 201: the engine rides through the NATS leader's
	// death inside the request, so no publisher sees a 5xx.
	var ackMu sync.Mutex
	var acked []string
	var serverErrors []string
	killed := make(chan struct{})
	reached := make(chan struct{})
	var reachOnce sync.Once
	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Go(func() {
			for i := range perPublisher {
				if p == 0 && i == killAt {
					reachOnce.Do(func() { close(reached) })
				}
				if i == killAt {
					<-killed // the rest is published after the kills
				}
				data := fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)
				key := fmt.Sprintf("p%d-%d", p, i)
				for try := 0; try < 20 && ctx.Err() == nil; try++ {
					id, status, body := publishStatus(node((p+i+try)%2), channel, data, key)
					if status >= 500 {
						ackMu.Lock()
						serverErrors = append(serverErrors, fmt.Sprintf("%s: %d %s", key, status, body))
						ackMu.Unlock()
					}
					if status == http.StatusCreated {
						ackMu.Lock()
						acked = append(acked, id)
						ackMu.Unlock()
						break
					}
				}
			}
		})
	}

	<-reached
	ackMu.Lock()
	before := len(acked)
	ackMu.Unlock()
	// Kill the stream's leader: the harder case, a leader election under
	// load.
	victim := natsNodes[0]
	leader := streamLeader(t, victim, "TETHER")
	for _, n := range natsNodes {
		if n.name == leader {
			victim = n
		}
	}
	t.Logf("SIGKILL of nats node %s (stream leader) and tether node 1 after %d acknowledged publishes", victim.name, before)
	victim.cmd.Process.Kill()
	<-victim.done
	aliveMu.Lock()
	alive[1] = false
	aliveMu.Unlock()
	nodes[1].cmd.Process.Kill()
	<-nodes[1].done
	close(killed)
	pubWG.Wait()

	ackMu.Lock()
	final := append([]string(nil), acked...)
	errs := serverErrors
	ackMu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d publishes with an idempotency key answered 5xx, the first: %s", len(errs), errs[0])
	}
	if len(final) < publishers*perPublisher*9/10 {
		t.Fatalf("only %d of %d publishes acknowledged: the cluster did not keep serving", len(final), publishers*perPublisher)
	}
	seen := map[string]bool{}
	for _, id := range final {
		if seen[id] {
			t.Fatalf("two acknowledged publishes share cursor %s", id)
		}
		seen[id] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range subs {
		for len(s.missing(final)) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling for a condition, with a deadline
		}
		if miss := s.missing(final); len(miss) > 0 {
			s.mu.Lock()
			last, n := s.last, len(s.got)
			s.mu.Unlock()
			t.Fatalf("%s misses %d of %d acknowledged messages (first %s; it received %d, the last %s)", s.name, len(miss), len(final), miss[0], n, last)
		}
	}
	stopSubs()
	subsWG.Wait()
	for _, s := range subs {
		for c, n := range s.got {
			if n > 1 {
				t.Errorf("%s received cursor %s %d times", s.name, c, n)
			}
		}
	}
	t.Logf("%d acknowledged messages reached all %d subscribers once (%d before the kills)", len(final), len(subs), before)
}

// publishStatus publishes data with an idempotency key and returns the
// cursor, the HTTP status (0 when no answer came: a dead node) and, for an
// error, the body.
func publishStatus(p *proc, channel, data, key string) (id string, status int, body string) {
	req, _ := http.NewRequest("POST", p.base+"/v1/channels/"+channel+"/messages", strings.NewReader(data))
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var a struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &a) != nil {
		return "", resp.StatusCode, string(b)
	}
	return a.ID, resp.StatusCode, ""
}
