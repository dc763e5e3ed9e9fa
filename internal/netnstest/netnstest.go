package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// Addresses of the two ends.
const (
	ServerIP = "192.0.2.1"
	ClientIP = "192.0.2.2"
)

// DropAll is the nftables ruleset Drop installs: everything in and out of
// the namespace is dropped, as if its cable were pulled.
const DropAll = `table inet tether {
	chain in { type filter hook input priority 0; policy drop; }
	chain out { type filter hook output priority 0; policy drop; }
}
`

// Pair is two namespaces joined by a veth pair.
type Pair struct {
	Server, Client string // namespace names
}

// Require skips t unless it runs as root with ip and nft installed.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("silent-peer tests need Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("silent-peer tests need root (network namespaces, nftables); run as root to include them")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("silent-peer tests need %q (iproute2, nftables): %v", tool, err)
		}
	}
}

var seq atomic.Int32

// Setup calls Require, creates the two namespaces and the veth pair, and
// removes them when the test ends, whatever happens. Deleting a namespace
// destroys its veth end, and with it the pair.
func Setup(t testing.TB) Pair {
	t.Helper()
	Require(t)
	n := seq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := Pair{Server: "tether-s-" + id, Client: "tether-c-" + id}
	vs, vc := fmt.Sprintf("tvs%x%x", os.Getpid(), n), fmt.Sprintf("tvc%x%x", os.Getpid(), n)
	for _, ns := range []string{p.Server, p.Client} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot create network namespaces here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "", "ip", "link", "add", vs, "netns", p.Server, "type", "veth", "peer", "name", vc, "netns", p.Client)
	for _, l := range [][3]string{{p.Server, vs, ServerIP + "/24"}, {p.Client, vc, ClientIP + "/24"}} {
		run(t, "", "ip", "-n", l[0], "addr", "add", l[2], "dev", l[1])
		run(t, "", "ip", "-n", l[0], "link", "set", l[1], "up")
		run(t, "", "ip", "-n", l[0], "link", "set", "lo", "up")
	}
	return p
}

// Drop pulls the client's cable: from now on its namespace drops every
// packet in and out.
func (p Pair) Drop(t testing.TB) {
	t.Helper()
	RunIn(t, p.Client, DropAll, "nft", "-f", "-")
}

// RunIn runs a command inside namespace ns with stdin.
func RunIn(t testing.TB, ns, stdin, name string, args ...string) {
	t.Helper()
	run(t, stdin, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func run(t testing.TB, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
