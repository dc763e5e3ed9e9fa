package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/auth"
)

func secretFile(t *testing.T) (string, []byte) {
	t.Helper()
	secret := []byte("a development secret of 32+ bytes!")
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

func TestTokenCmd(t *testing.T) {
	path, secret := secretFile(t)
	var out, errOut bytes.Buffer
	err := tokenCmd([]string{
		"--secret-file", path, "--sub", "alice",
		"--subscribe", "news.>", "--subscribe", "chat.*,room.1",
		"--publish", "news.*", "--jobs", "resize", "--worker", "resize",
		"--admin", "--ttl", "2h", "--iss", "dev", "--aud", "tether",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("tokenCmd: %v (stderr %q)", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if strings.Count(tok, ".") != 2 || strings.Contains(tok, "\n") {
		t.Fatalf("output %q is not one JWT", out.String())
	}
	v, err := auth.NewVerifier(auth.Config{Secret: secret, Issuer: "dev", Audience: "tether"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("the server's Verifier refuses the token: %v", err)
	}
	checks := []struct {
		what string
		err  error
	}{
		{"subscribe news.a.b", p.MaySubscribe("news.a.b")},
		{"subscribe chat.x", p.MaySubscribe("chat.x")},
		{"subscribe room.1", p.MaySubscribe("room.1")},
		{"publish news.x", p.MayPublish("news.x")},
		{"create resize", p.MayCreateJob("resize")},
		{"work resize", p.MayWork("resize")},
		{"admin", p.MayAdmin()},
	}
	for _, c := range checks {
		if c.err != nil {
			t.Errorf("%s: %v", c.what, c.err)
		}
	}
	if p.MayPublish("news.a.b") == nil || p.MaySubscribe("other") == nil || p.MayCreateJob("other") == nil {
		t.Error("the token allows more than asked")
	}
	if p.Sub() != "alice" {
		t.Errorf("sub %q", p.Sub())
	}
	if left := time.Until(p.Expires()); left < 119*time.Minute || left > 2*time.Hour {
		t.Errorf("expires in %v, want about 2h", left)
	}
	// Without --iss, a server that checks the issuer refuses it.
	out.Reset()
	if err := tokenCmd([]string{"--secret-file", path, "--sub", "bob"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(strings.TrimSpace(out.String())); err == nil {
		t.Error("a token without iss/aud passed a Verifier that checks them")
	}
}

func TestTokenCmdRefuses(t *testing.T) {
	path, _ := secretFile(t)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("short"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no secret file", []string{"--sub", "a"}, "--secret-file"},
		{"no sub", []string{"--secret-file", path}, "--sub"},
		{"bad pattern", []string{"--secret-file", path, "--sub", "a", "--publish", "a.>.b"}, "'>' may only be the last"},
		{"bad job type", []string{"--secret-file", path, "--sub", "a", "--jobs", "a b"}, "job type"},
		{"zero ttl", []string{"--secret-file", path, "--sub", "a", "--ttl", "0s"}, "--ttl"},
		{"short secret", []string{"--secret-file", short, "--sub", "a"}, "at least"},
		{"missing file", []string{"--secret-file", short + "x", "--sub", "a"}, "no such file"},
		{"stray argument", []string{"--secret-file", path, "--sub", "a", "extra"}, "unexpected"},
		{"unknown flag", []string{"--nope"}, "not defined"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		err := tokenCmd(c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q despite the error", c.name, out.String())
		}
	}
	var out, errOut bytes.Buffer
	if err := tokenCmd([]string{"-h"}, &out, &errOut); err != nil || !strings.Contains(errOut.String(), "--secret-file") && !strings.Contains(errOut.String(), "-secret-file") {
		t.Errorf("-h: %v, usage %q", err, errOut.String())
	}
}
