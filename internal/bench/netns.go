package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/tether-run/tether/internal/netnstest"
)

// netnsPair is two network namespaces joined by a veth pair, the server at
// netnstest.ServerIP and the client at netnstest.ClientIP, as
// internal/netnstest builds them for tests; the harness needs the same
// outside a test, with errors instead of t.Fatal.
type netnsPair struct {
	server, client string
}

var netnsSeq atomic.Int32

// netnsSupport says why silent-drop runs cannot happen here, or "" if they
// can: they need Linux, root, ip and nft.
func netnsSupport() string {
	if os.Geteuid() != 0 {
		return "silent drop needs root (network namespaces and an nft drop rule)"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("silent drop needs %s (iproute2, nftables): %v", tool, err)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "silent drop needs Linux network namespaces"
	}
	return ""
}

// newNetnsPair creates the namespaces and the veth pair; close removes
// them.
func newNetnsPair() (*netnsPair, error) {
	n := netnsSeq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := &netnsPair{server: "tbench-s-" + id, client: "tbench-c-" + id}
	vs, vc := fmt.Sprintf("tbs%x%x", os.Getpid(), n), fmt.Sprintf("tbc%x%x", os.Getpid(), n)
	steps := [][]string{
		{"ip", "netns", "add", p.server},
		{"ip", "netns", "add", p.client},
		{"ip", "link", "add", vs, "netns", p.server, "type", "veth", "peer", "name", vc, "netns", p.client},
	}
	for _, l := range [][3]string{{p.server, vs, netnstest.ServerIP + "/24"}, {p.client, vc, netnstest.ClientIP + "/24"}} {
		steps = append(steps,
			[]string{"ip", "-n", l[0], "addr", "add", l[2], "dev", l[1]},
			[]string{"ip", "-n", l[0], "link", "set", l[1], "up"},
			[]string{"ip", "-n", l[0], "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := runCmd("", s...); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// drop pulls the client's cable (netnstest.DropAll in its namespace).
func (p *netnsPair) drop() error {
	return runCmd(netnstest.DropAll, "ip", "netns", "exec", p.client, "nft", "-f", "-")
}

// close deletes both namespaces, and with them the veth pair.
func (p *netnsPair) close() {
	exec.Command("ip", "netns", "del", p.server).Run()
	exec.Command("ip", "netns", "del", p.client).Run()
}

func runCmd(stdin string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// inNS runs f in namespace ns (netnstest.In), or here when ns is "".
func inNS(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	if err := netnstest.In(ns, f); err != nil {
		return errors.Join(fmt.Errorf("bench: in netns %s", ns), err)
	}
	return nil
}
