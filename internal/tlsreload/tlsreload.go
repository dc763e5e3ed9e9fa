package tlsreload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Reloader serves a certificate and key read from files, and re-reads
// them when told (the server calls Reload on SIGHUP). A failed reload
// keeps the certificate in use, so a half-written renewal never takes
// the listener down.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// New loads certFile (PEM, the leaf first, then intermediates) and
// keyFile (its PEM private key).
func New(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tether: TLS needs both --tls-cert and --tls-key")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again and, if they hold a valid pair, serves
// the new certificate to every handshake from now on; connections
// already established keep theirs. On error the old certificate stays.
func (r *Reloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tether: TLS certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&c)
	return nil
}

// GetCertificate is for tls.Config.GetCertificate: the current
// certificate, whatever the client asked for.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// NotAfter is when the current certificate expires (for a log line at
// start and after each reload).
func (r *Reloader) NotAfter() time.Time {
	if leaf := r.cert.Load().Leaf; leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

// TLSConfig returns a server configuration that takes its certificate
// from r: TLS 1.2 at least (RFC 8996 retires 1.0 and 1.1), Go's default
// cipher suites. The caller may add NextProtos (net/http does for h2).
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
