package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tether-run/tether"
	"github.com/tether-run/tether/internal/cli"
)

// defaultServer is the URL the client commands use without --server:
// where tether serve listens by default.
func defaultServer() string { return "http://" + tether.DefaultAddr }

// newClientFlags is the flag set of a client command, with the common
// flags and a usage that starts with synopsis and about.
func newClientFlags(name, synopsis, about string, c *cli.Common, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tether "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Register(fs, defaultServer())
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tether %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// requestTimeout bounds one request of the jobs and connections commands.
const requestTimeout = 30 * time.Second

// api is the HTTP API client of the common flags.
func api(c cli.Common, stderr io.Writer) *cli.API {
	return &cli.API{Base: c.Server, Token: c.Token, HTTP: &http.Client{Timeout: requestTimeout}, Stderr: stderr}
}

// oneSubcommand splits args into a subcommand of those named and the rest.
func oneSubcommand(args []string, names ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("missing %s", strings.Join(names, ", "))
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("unknown subcommand %q (want %s)", args[0], strings.Join(names, ", "))
}

// ago is a time as how long ago, to the second ("-" for none).
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// parseFlags parses a client command that takes no positional argument,
// and resolves its common flags.
func parseFlags(fs *flag.FlagSet, args []string, c *cli.Common) error {
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.Args(pos); err != nil {
		return err
	}
	return c.Resolve(fs)
}
