package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tether-run/tether/auth"
)

// tokenCmd is `tether token`: it signs an HS256 development token with
// the secret the server reads from --token-secret-file and prints it.
// Production tokens come from the application's own login, signed with
// its secret or private key; this is for trying tether out and for
// tests. The token is checked with the same Verifier the server uses
// before it is printed, so a malformed pattern fails here, not at
// connect.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tether token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		secretFile, sub, iss, aud string
		subscribe, publish        listFlag
		jobTypes, worker          listFlag
		admin                     bool
		ttl                       time.Duration
	)
	fs.StringVar(&secretFile, "secret-file", "", "`file` holding the HS256 secret (the server's --token-secret-file)")
	fs.StringVar(&sub, "sub", "", "user id (sub claim); required")
	fs.Var(&subscribe, "subscribe", "channel `pattern` the user may read (repeatable or comma-separated; * one token, > the rest)")
	fs.Var(&publish, "publish", "channel `pattern` the user may publish to (repeatable or comma-separated)")
	fs.Var(&jobTypes, "jobs", "job `type` the user may create (repeatable or comma-separated; * all)")
	fs.Var(&worker, "worker", "job `type` this token may run as a worker (repeatable or comma-separated; * all)")
	fs.BoolVar(&admin, "admin", false, "grant the admin API")
	fs.DurationVar(&ttl, "ttl", time.Hour, "lifetime of the token")
	fs.StringVar(&iss, "iss", "", "issuer (iss claim), if the server checks one")
	fs.StringVar(&aud, "aud", "", "audience (aud claim), if the server checks one")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tether token --secret-file F --sub alice [--subscribe 'news.>'] [--publish 'news.*'] [--jobs T] [--worker T] [--admin] [--ttl 1h] [--iss X] [--aud Y]\n\nSigns a development token and prints it.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("token: unexpected arguments: %q", fs.Args())
	case secretFile == "":
		return errors.New("token: --secret-file is required")
	case sub == "":
		return errors.New("token: --sub is required")
	case ttl <= 0:
		return errors.New("token: --ttl must be positive")
	}
	secret, err := auth.LoadSecretFile(secretFile)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	now := time.Now()
	c := auth.Claims{Tether: auth.Permissions{
		Subscribe: subscribe, Publish: publish, Jobs: jobTypes, Worker: worker, Admin: admin,
	}}
	c.Subject, c.Issuer = sub, iss
	if aud != "" {
		c.Audience = jwt.ClaimStrings{aud}
	}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	tok, err := auth.Sign(secret, c)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	v, err := auth.NewVerifier(auth.Config{Secret: secret, Issuer: iss, Audience: aud, Now: func() time.Time { return now }})
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if _, err := v.Verify(tok); err != nil {
		return fmt.Errorf("token: the claims are not valid: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// listFlag collects a repeatable flag whose values may also be
// comma-separated (commas cannot occur in channel names or job types).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Get makes a listFlag a flag.Getter, so that a config file knows the
// setting is a list.
func (l *listFlag) Get() any { return []string(*l) }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
