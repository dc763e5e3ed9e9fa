package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run dispatches tether token.
func TestRunToken(t *testing.T) {
	var stderr bytes.Buffer
	err := run([]string{"token", "--sub", "alice"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--secret-file is required") {
		t.Fatalf("tether token without a secret: %v", err)
	}
}

// Open mode on a public address is refused unless --insecure; the
// security flags parse into the config.
func TestServeOpenModeRefused(t *testing.T) {
	var stderr bytes.Buffer
	err := run([]string{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir()}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "open mode") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("serve open on 0.0.0.0: %v", err)
	}
	cfg, _, err := parseServeFlags([]string{"--allowed-origins", "https://a.example, https://b.example", "--ws-origin", "c.example",
		"--allowed-hosts", "x.example", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--max-connections-per-ip", "5"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AllowedOrigins) != 2 || cfg.WSOriginPatterns[0] != "c.example" || cfg.AllowedHosts[0] != "x.example" ||
		cfg.TLSCertFile != "c.pem" || cfg.TLSKeyFile != "k.pem" || cfg.Limits.MaxConnectionsPerIP != 5 {
		t.Fatalf("config %+v", cfg)
	}
}

// SIGHUP reloads the TLS certificate of the HTTP and TCP listeners; the
// token flags turn access control on.
func TestSIGHUPReloadsTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, secret := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "secret")
	writeCert(t, cert, key, "first")
	os.WriteFile(secret, []byte("a-secret-of-more-than-32-bytes-0123456789"), 0o600)
	p := startBinary(t, t.TempDir(), "--tls-cert", cert, "--tls-key", key, "--token-secret-file", secret, "--tcp-addr", "127.0.0.1:0")
	addrs := []string{strings.TrimPrefix(p.base, "http://"), p.tcpAddr}
	subject := func(addr string) string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for _, a := range addrs {
		if cn := subject(a); cn != "first" {
			t.Fatalf("%s: %q", a, cn)
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + addrs[0] + "/v1/channels/a/messages?wait=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	writeCert(t, cert, key, "second")
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for subject(addrs[0]) != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not reloaded within 10s of SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cn := subject(addrs[1]); cn != "second" {
		t.Fatalf("TCP after SIGHUP: %q", cn)
	}
}

func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	// Write to temporary names and rename, so a reload never reads half a file.
	os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.Rename(keyFile+".tmp", keyFile)
	os.Rename(certFile+".tmp", certFile)
}
