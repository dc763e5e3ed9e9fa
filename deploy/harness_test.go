package deploy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tether-run/tether/internal/netnstest"
)

// siteName is the public name in the committed proxy configurations. The
// test clients resolve it to 127.0.0.1 themselves (see client).
const siteName = "tether.example.com"

// clientIP is the address the test clients connect from, so that the
// address tether records (the proxy's, 127.0.0.1) is told apart from the
// client's.
const clientIP = "127.0.0.2"

// clientAddr is clientIP as a local address to dial from.
var clientAddr = &net.TCPAddr{IP: net.ParseIP(clientIP)}

// generous bounds every wait; nothing here is expected to take more than a
// fraction of it, even on a loaded machine.
const generous = 20 * time.Second

// binDir holds the tether binary once built; TestMain removes it.
var binDir string

// buildTether builds cmd/tether once per test binary run.
var buildTether = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tether-deploy-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "tether")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/tether").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// tetherProc is a running tether binary on loopback.
type tetherProc struct {
	cmd     *exec.Cmd
	addr    string // HTTP, host:port
	tcpAddr string
	done    chan struct{}
	httpc   *http.Client // reaches addr (inside the network namespace, if any)
}

// proxiedFlags are the flags deploy/tether.service gives tether for
// running behind a proxy on the same machine.
var proxiedFlags = []string{"--trusted-proxies", "127.0.0.1"}

// startTether runs `tether serve` on free loopback ports (HTTP and TCP),
// with data in a temp dir and the proxies' Host allowed, and stops it
// (SIGTERM) when the test ends.
func startTether(t *testing.T, extra ...string) *tetherProc {
	return startTetherIn(t, "", extra...)
}

// startTetherIn is startTether inside network namespace ns ("": this
// one).
func startTetherIn(t *testing.T, ns string, extra ...string) *tetherProc {
	t.Helper()
	bin, err := buildTether()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0",
		"--data", t.TempDir(), "--allowed-hosts", siteName + ",127.0.0.1", "--log-format", "json", "--shutdown-grace", "2s"}, extra...)
	cmd := inNS(ns, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &tetherProc{cmd: cmd, done: make(chan struct{}), httpc: &http.Client{
		Transport: &http.Transport{DialContext: dialIn(ns, nil)}, Timeout: generous}}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				switch line.Msg {
				case "listening":
					addrs <- [2]string{"http", line.Addr}
				case "listening for TCP":
					addrs <- [2]string{"tcp", line.Addr}
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(generous):
			cmd.Process.Kill()
			<-p.done
			t.Errorf("tether did not stop within %v of SIGTERM", generous)
		}
	})
	deadline := time.After(generous)
	for p.addr == "" || p.tcpAddr == "" {
		select {
		case a := <-addrs:
			if a[0] == "http" {
				p.addr = a[1]
			} else {
				p.tcpAddr = a[1]
			}
		case <-p.done:
			t.Fatal("tether exited before listening")
		case <-deadline:
			t.Fatal("tether did not log its addresses")
		}
	}
	return p
}

// metric reads one series of tether's /metrics, straight from tether (not
// through the proxy): the sum of the samples of name whose labels include
// every one of labels ("k=v").
func (p *tetherProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := p.httpc.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metricName, labelText, _ := strings.Cut(series, "{")
		if metricName != name {
			continue
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(labelText, k+`="`+v+`"`) {
				continue next
			}
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	return sum
}

// series returns the lines of tether's /metrics for name, for failure
// messages.
func (p *tetherProc) series(t *testing.T, name string) string {
	t.Helper()
	resp, err := p.httpc.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+"{") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "\n")
}

// connection is an entry of tether's GET /v1/connections.
type connection struct {
	ID        string `json:"id"`
	Transport string `json:"transport"`
	Remote    string `json:"remote"`
}

// connections lists tether's live connections, straight from tether.
func (p *tetherProc) connections(t *testing.T) []connection {
	t.Helper()
	resp, err := p.httpc.Get("http://" + p.addr + "/v1/connections")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Connections []connection }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Connections
}

// waitFor polls cond until it holds, failing the test after generous
// with the output of each of diags.
func waitFor(t *testing.T, what string, cond func() bool, diags ...func() string) {
	t.Helper()
	waitForWithin(t, generous, what, cond, diags...)
}

// waitForWithin is waitFor with its own bound.
func waitForWithin(t *testing.T, bound time.Duration, what string, cond func() bool, diags ...func() string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			var d []string
			for _, f := range diags {
				d = append(d, f())
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", bound, what, strings.Join(d, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// freePort returns a port that was free a moment ago on every address, for
// the proxies, which cannot report a port 0 they were given. (Caddy binds
// every address, which fails on a port that any socket holds, such as the
// test clients' own connections from clientIP.)
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// inNS is exec.Command for name run inside network namespace ns ("": this
// one). ip netns exec execs the command, so the process is name's own.
func inNS(ns, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// dialIn returns a dialer whose sockets are made inside network namespace
// ns ("": this one), from local (nil: any address).
func dialIn(ns string, local net.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	if ns == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		nerr := netnstest.In(ns, func() error {
			c, err = d.DialContext(ctx, network, addr)
			return nil
		})
		if nerr != nil {
			return nil, nerr
		}
		return c, err
	}
}

// waitListening waits until something accepts on addr, in namespace ns.
func waitListening(t *testing.T, ns, addr string, exited <-chan struct{}, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(generous)
	dial := dialIn(ns, nil)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("proxy exited before listening on %s:\n%s", addr, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v:\n%s", addr, generous, logs())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// sub is one replacement made when rendering a committed file: old must
// occur exactly n times.
type sub struct {
	old, new string
	n        int
}

// render reads the committed file src, makes each replacement (checking
// its count, so a change to the file that the test would silently stop
// covering fails instead), and writes the result to dir/name.
func render(t *testing.T, src, dir, name string, subs ...sub) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range subs {
		if got := strings.Count(s, r.old); got != r.n {
			t.Fatalf("%s: %q occurs %d times, the test expects %d", src, r.old, got, r.n)
		}
		s = strings.ReplaceAll(s, r.old, r.new)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// testCert writes a self-signed certificate for siteName to dir and
// returns the paths of the certificate and key, and a pool trusting it.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: siteName},
		DNSNames:              []string{siteName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// front is a proxy under test as its clients see it: how to reach it, and
// what it does to what tether sees.
type front struct {
	name    string
	ip      string // the address the proxy listens on, which siteName resolves to
	port    int    // where the proxy listens for HTTP(S)
	tls     *tls.Config
	tether  *tetherProc
	tcpPort int // the proxy's listener for tether's TCP transport (0: none)
	// clientNS and clientIP are where the test's clients connect from:
	// a network namespace ("": this one) and a local address (nil: any).
	clientNS string
	clientIP net.Addr
}

// scheme is "https" or "http", and wsScheme its WebSocket twin.
func (f *front) scheme() string {
	if f.tls != nil {
		return "https"
	}
	return "http"
}

func (f *front) url(path string) string {
	return fmt.Sprintf("%s://%s:%d%s", f.scheme(), siteName, f.port, path)
}

func (f *front) wsURL(path string) string {
	s := "ws"
	if f.tls != nil {
		s = "wss"
	}
	return fmt.Sprintf("%s://%s:%d%s", s, siteName, f.port, path)
}

// dial connects a test client to the proxy: siteName resolves to f.ip.
func (f *front) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == siteName {
		host = f.ip
	}
	return dialIn(f.clientNS, f.clientIP)(ctx, network, net.JoinHostPort(host, port))
}

// client is an HTTP/1.1 client of the proxy.
func (f *front) client() *http.Client {
	tr := &http.Transport{DialContext: f.dial, TLSClientConfig: f.tls, DisableKeepAlives: true}
	return &http.Client{Transport: tr, Timeout: 2 * generous}
}

// rawConn opens a TCP (or TLS) connection to the proxy's HTTP port, for
// requests written by hand, and returns it with its underlying TCP
// connection (for CloseWrite and SetLinger).
func (f *front) rawConn(t *testing.T) (net.Conn, *net.TCPConn) {
	t.Helper()
	c, err := f.dial(context.Background(), "tcp", fmt.Sprintf("%s:%d", siteName, f.port))
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if f.tls == nil {
		return c, tc
	}
	// TLS 1.2: a TLS 1.3 server sends session tickets after the handshake,
	// which a client that never reads leaves unread, and closing a socket
	// with unread data sends RST (RFC 9293 §3.6; Linux tcp_close), not the
	// FIN of a client that closes.
	cfg := f.tls.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	tlc := tls.Client(c, cfg)
	if err := tlc.Handshake(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return tlc, tc
}
