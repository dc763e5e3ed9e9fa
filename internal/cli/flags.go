package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Environment variables of the common flags.
const (
	EnvServer = "TETHER_SERVER"
	EnvToken  = "TETHER_TOKEN"
)

// Common are the flags every client command takes: where the server is,
// the token to present, and whether to print JSON lines.
type Common struct {
	// Server is the base URL of the server's HTTP API, http://host:port.
	Server string
	// Token is the bearer token (a JWT); empty on an open server.
	Token string
	// JSON selects one JSON object per line instead of human output.
	JSON bool
}

// Register defines --server (default defServer), --token and --json on
// fs. The environment (TETHER_SERVER, TETHER_TOKEN) is applied by
// Resolve, after parsing, so that -h never prints a token.
func (c *Common) Register(fs *flag.FlagSet, defServer string) {
	fs.StringVar(&c.Server, "server", defServer, "base `URL` of the server (env "+EnvServer+")")
	fs.StringVar(&c.Token, "token", "", "bearer `token` for a server with access control (env "+EnvToken+"; see tether token)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per line, for scripts")
}

// Resolve applies the environment to the common flags fs did not set
// (flags beat the environment, which beats the default) and checks the
// server URL. A bare host:port means http://host:port.
func (c *Common) Resolve(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if v, ok := os.LookupEnv(EnvServer); ok && !set["server"] {
		c.Server = v
	}
	if v, ok := os.LookupEnv(EnvToken); ok && !set["token"] {
		c.Token = v
	}
	if !strings.Contains(c.Server, "://") {
		c.Server = "http://" + c.Server
	}
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--server %q: want http://host:port or https://host:port", c.Server)
	}
	c.Server = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	return nil
}

// Parse parses args with fs, allowing flags after positional arguments
// (tether tail news --after 5), and returns the positional arguments.
// Everything after "--" is positional. It returns flag.ErrHelp for -h.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Args checks the number of positional arguments, naming them for the
// error: Args(pos, "CHANNEL", "JSON").
func Args(pos []string, names ...string) error {
	switch {
	case len(pos) < len(names):
		return fmt.Errorf("missing %s", strings.Join(names[len(pos):], " "))
	case len(pos) > len(names):
		return fmt.Errorf("unexpected arguments: %q", pos[len(names):])
	}
	return nil
}

// IsHelp reports whether err is the flag package's answer to -h: the
// usage was printed, and the command succeeds.
func IsHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
