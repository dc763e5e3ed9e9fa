package main

import (
	"bytes"
	"strings"
	"testing"
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
