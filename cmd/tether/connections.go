package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tether-run/tether/internal/cli"
)

const connectionsUsage = `usage: tether connections ls
       tether connections close ID [--mode close|reset|discard]

Lists the server's live connections, every transport, oldest first, and ends one
(GET /v1/connections, POST /v1/connections/ID/close; an admin token). Close modes:
  close    graceful: what is queued, then a close frame / FIN (graceful is another name)
  reset    a TCP RST at once; what was unsent is discarded
  discard  nothing: the server forgets the socket (needs CAP_NET_ADMIN, else reset)
Each takes --server, --token and --json (tether connections ls -h).
`

// connection is a live connection as GET /v1/connections lists it.
type connection struct {
	ID        string        `json:"id"`
	Transport string        `json:"transport"`
	Remote    string        `json:"remote"`
	Sub       string        `json:"sub"`
	Session   string        `json:"session"`
	State     string        `json:"state"`
	Channels  []string      `json:"channels"`
	Age       time.Duration `json:"age_ns"`
	BytesIn   int64         `json:"bytes_in"`
	BytesOut  int64         `json:"bytes_out"`
}

// connectionsCmd is tether connections ls|close.
func connectionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stderr, connectionsUsage)
		return nil
	}
	sub, rest, err := oneSubcommand(args, "ls", "close")
	if err != nil {
		fmt.Fprint(stderr, connectionsUsage)
		return err
	}
	var c cli.Common
	if sub == "ls" {
		fs := newClientFlags("connections ls", "connections ls [flags]", "Lists the live connections, oldest first.", &c, stderr)
		if err := parseFlags(fs, rest, &c); err != nil {
			return err
		}
		return connectionsList(ctx, api(c, stderr), c.JSON, stdout)
	}
	fs := newClientFlags("connections close", "connections close [flags] ID",
		"Ends one connection with the reason kicked.", &c, stderr)
	mode := fs.String("mode", "close", "how: close (graceful), reset or discard")
	pos, err := cli.Parse(fs, rest)
	if err != nil {
		return err
	}
	if err := cli.Args(pos, "ID"); err != nil {
		return err
	}
	if err := c.Resolve(fs); err != nil {
		return err
	}
	m := *mode
	if m == "graceful" {
		m = "close"
	}
	var ans struct {
		ID        string `json:"id"`
		Mode      string `json:"mode"`
		Requested string `json:"requested,omitempty"`
	}
	path := "/v1/connections/" + url.PathEscape(pos[0]) + "/close?mode=" + url.QueryEscape(m)
	if err := api(c, stderr).Do(ctx, "POST", path, nil, &ans); err != nil {
		return err
	}
	if c.JSON {
		return cli.JSONLine(stdout, ans)
	}
	if ans.Requested != "" && ans.Requested != ans.Mode {
		_, err = fmt.Fprintf(stdout, "connection %s: %s (asked for %s, which the server could not do: it needs CAP_NET_ADMIN)\n",
			cli.Printable(ans.ID, 64), ans.Mode, ans.Requested)
		return err
	}
	_, err = fmt.Fprintf(stdout, "connection %s: %s\n", cli.Printable(ans.ID, 64), ans.Mode)
	return err
}

func connectionsList(ctx context.Context, a *cli.API, asJSON bool, stdout io.Writer) error {
	var ans struct {
		Connections []json.RawMessage `json:"connections"`
	}
	if err := a.Do(ctx, "GET", "/v1/connections", nil, &ans); err != nil {
		return err
	}
	if asJSON {
		return writeCompactAll(stdout, ans.Connections)
	}
	rows := make([][]string, 0, len(ans.Connections))
	for _, raw := range ans.Connections {
		var cn connection
		if err := json.Unmarshal(raw, &cn); err != nil {
			return fmt.Errorf("a connection not as expected: %w", err)
		}
		channels := orDash(cli.Printable(strings.Join(cn.Channels, ","), 60))
		rows = append(rows, []string{cli.Printable(cn.ID, 64), cn.Transport, cli.Printable(cn.Remote, 64),
			orDash(cli.Printable(cn.Sub, 64)), cn.State, channels, cn.Age.Round(time.Second).String(),
			strconv.FormatInt(cn.BytesIn, 10), strconv.FormatInt(cn.BytesOut, 10)})
	}
	return cli.Table(stdout, []string{"ID", "TRANSPORT", "REMOTE", "SUB", "STATE", "CHANNELS", "AGE", "IN", "OUT"}, rows)
}
