package tlsreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// selfSigned writes a self-signed certificate for localhost/127.0.0.1
// with the given serial to certFile/keyFile (through a rename, as a
// certificate manager would) and returns it.
func selfSigned(t *testing.T, serial int64, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "tether test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path, typ string, b []byte) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, "PRIVATE KEY", keyDER)
	write(certFile, "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// serve runs a TLS listener on loopback that completes handshakes and
// closes; it stops when the test ends.
func serve(t *testing.T, r *Reloader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, r.TLSConfig())
	done := make(chan struct{})
	go func() { // owner: this test; exits when the listener closes
		defer close(done)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { tl.Close(); <-done })
	return ln.Addr().String()
}

// served dials addr trusting roots and returns the serial of the
// certificate the server presented.
func served(t *testing.T, addr string, roots ...*x509.Certificate) int64 {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a := selfSigned(t, 1, certFile, keyFile)
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !r.NotAfter().Equal(a.NotAfter) {
		t.Errorf("NotAfter %v, want %v", r.NotAfter(), a.NotAfter)
	}
	addr := serve(t, r)
	if got := served(t, addr, a); got != 1 {
		t.Fatalf("serial %d served, want 1", got)
	}

	// Renewed on disk: still the old one until Reload.
	b := selfSigned(t, 2, certFile, keyFile)
	if got := served(t, addr, a, b); got != 1 {
		t.Errorf("before Reload: serial %d served, want 1", got)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, addr, b); got != 2 {
		t.Errorf("after Reload: serial %d served, want 2", got)
	}

	// A broken renewal keeps the current certificate.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Error("Reload of a broken key: nil error")
	}
	if got := served(t, addr, b); got != 2 {
		t.Errorf("after a failed Reload: serial %d served, want 2", got)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := New("", ""); err == nil {
		t.Error("empty paths accepted")
	}
	if _, err := New(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope.key")); err == nil {
		t.Error("missing files accepted")
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	selfSigned(t, 1, certFile, keyFile)
	otherCert, otherKey := filepath.Join(dir, "c2.pem"), filepath.Join(dir, "k2.pem")
	selfSigned(t, 2, otherCert, otherKey)
	if _, err := New(certFile, otherKey); err == nil {
		t.Error("a key that does not match the certificate was accepted")
	}
}
