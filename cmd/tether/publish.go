package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/internal/cli"
)

// maxStdinMessage bounds a message read from standard input (the server
// has its own bound, --max-body, 1 MiB by default).
const maxStdinMessage = 16 << 20

// stdin is where tether publish reads a message given as "-".
var stdin io.Reader = os.Stdin

// publishCmd is tether publish CHANNEL JSON.
func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c cli.Common
	fs := newClientFlags("publish", "publish [flags] CHANNEL JSON|-",
		"Publishes one message (JSON; - or none reads it from standard input) and prints its cursor\n"+
			"once the server has it durably. Retried across reconnects, never appended twice.\n"+
			"A message that starts with - goes after --: tether publish counter -- -1", &c, stderr)
	key := fs.String("idempotency-key", "", "idempotency `key`: a publish repeated with it within the server's dedup window appends nothing (default: a fresh one)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long, waiting for the server included")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		pos = append(pos, "-")
	}
	if err := cli.Args(pos, "CHANNEL", "JSON"); err != nil {
		return err
	}
	if err := c.Resolve(fs); err != nil {
		return err
	}
	data, err := messageArg(pos[1])
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	conn, err := cli.Dial(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var opts []client.PublishOption
	if *key != "" {
		opts = append(opts, client.WithIdempotencyKey(*key))
	}
	// A refusal that ends the connection for good (a token that expired)
	// ends the publish too: the client would reconnect and be refused.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-conn.Ended():
			cancel(err)
		case <-pctx.Done():
		}
	}()
	res, err := conn.Publish(pctx, pos[0], json.RawMessage(data), opts...)
	if err != nil {
		if cause := context.Cause(pctx); cause != nil && ctx.Err() == nil {
			return cause
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within --timeout %v (the message may have been appended: publish again with the same --idempotency-key to know)", *timeout)
		}
		return cli.Explain(err)
	}
	if c.JSON {
		return cli.JSONLine(stdout, map[string]any{"channel": res.Channel, "cursor": res.Cursor, "duplicate": res.Duplicate})
	}
	if res.Duplicate {
		_, err = fmt.Fprintf(stdout, "%s: cursor %s (a repeat of an earlier publish with this key: nothing appended)\n", res.Channel, res.Cursor)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: cursor %s\n", res.Channel, res.Cursor)
	return err
}

// messageArg is the message to publish: arg, or standard input for "-",
// checked to be one JSON value in UTF-8.
func messageArg(arg string) ([]byte, error) {
	data := []byte(arg)
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxStdinMessage+1))
		if err != nil {
			return nil, fmt.Errorf("reading the message from standard input: %w", err)
		}
		if len(b) > maxStdinMessage {
			return nil, fmt.Errorf("the message on standard input is larger than %d bytes", maxStdinMessage)
		}
		data = b
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return nil, errors.New("the message is not one JSON value in UTF-8 (a string needs its quotes: '\"hi\"')")
	}
	return data, nil
}
