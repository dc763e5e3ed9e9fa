package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-run/tether/internal/cli"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		os.Exit(1)
	}
}

const usage = `usage: tether COMMAND [flags]

Server:
  serve                       run the server (--config FILE; tether serve -h lists its flags)
  config defaults             print a config file with every setting at its default
  config check FILE           validate a config file
  token                       sign a development token

Client (--server URL, --token T, --json; each has -h):
  publish CHANNEL JSON        publish a message; prints its cursor once durable
  tail CHANNEL [--after C]    print a channel's messages as they come, resuming across reconnects
  jobs ls|show ID|cancel ID   list, show and cancel jobs
  connections ls|close ID     list connections, close one (--mode close|reset|discard)

  version                     print the version, VCS commit and Go version
`

// run runs the command in args, writing to os.Stdout and stderr; SIGINT
// and SIGTERM end the client commands (serve handles its signals itself).
func run(args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve" {
		return serve(args[1:], stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runCmd(ctx, args, os.Stdout, stderr)
}

// runCmd dispatches every command but serve.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "token":
		return tokenCmd(rest, stdout, stderr)
	case "publish":
		err = publishCmd(ctx, rest, stdout, stderr)
	case "tail":
		err = tailCmd(ctx, rest, stdout, stderr)
	case "jobs":
		err = jobsCmd(ctx, rest, stdout, stderr)
	case "connections":
		err = connectionsCmd(ctx, rest, stdout, stderr)
	case "version":
		err = versionCmd(rest, stdout, stderr)
	case "config":
		err = configCmd(rest, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil && !cli.IsHelp(err) {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}
