package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tether-run/tether/client"
	"github.com/tether-run/tether/internal/cli"
)

// tailLine is one line of tether tail --json: a message, or a gap.
type tailLine struct {
	Channel  string          `json:"channel"`
	Cursor   string          `json:"cursor,omitempty"`
	Time     *time.Time      `json:"time,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Gap      bool            `json:"gap,omitempty"`
	After    string          `json:"after,omitempty"`
	Earliest string          `json:"earliest,omitempty"`
}

// tailCmd is tether tail CHANNEL: it prints the channel's messages as they
// come, one line each, and follows it across reconnects and server
// restarts by cursor (the Go client's subscription resumes after the last
// cursor it received and drops a message it received already), so no
// message is printed twice or skipped; what retention removed is reported
// as a gap.
func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c cli.Common
	fs := newClientFlags("tail", "tail [flags] CHANNEL",
		"Prints the channel's messages as they come, one line each (CURSOR DATA; --json: one object),\n"+
			"resuming by cursor across reconnects and server restarts, until interrupted.", &c, stderr)
	after := fs.String("after", "", "start after this `cursor` (0: from the oldest retained message; default: only new messages)")
	count := fs.Int("count", 0, "exit after this many messages (0: follow until interrupted)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.Args(pos, "CHANNEL"); err != nil {
		return err
	}
	if err := c.Resolve(fs); err != nil {
		return err
	}
	if *count < 0 {
		return errors.New("--count must not be negative")
	}
	channel := pos[0]
	conn, err := cli.Dial(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer conn.Close()

	// The handler runs on the client's delivery goroutine; mu lets the
	// interrupted command stop it between two lines and know the last.
	var (
		mu      sync.Mutex
		printed int
		last    = *after
		done    bool
		ended   = make(chan error, 1)
	)
	endLocked := func(err error) {
		done = true
		ended <- err // the only send: done is set
	}
	handler := func(ev client.Event) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		var err error
		switch ev.Kind {
		case client.EventMessage:
			if err = printMessage(stdout, c.JSON, ev); err != nil {
				break
			}
			printed++
			last = ev.Cursor
			if *count > 0 && printed == *count {
				endLocked(nil)
			}
		case client.EventGap:
			if c.JSON {
				err = cli.JSONLine(stdout, tailLine{Channel: ev.Channel, Gap: true, After: ev.GapAfter, Earliest: ev.GapEarliest})
			} else {
				fmt.Fprintf(stderr, "tether: gap: retention removed messages after cursor %s; resuming at %s\n", ev.GapAfter, ev.GapEarliest)
			}
		case client.EventError:
			endLocked(cli.Explain(ev.Err))
		}
		if err != nil && !done {
			endLocked(fmt.Errorf("writing: %w", err))
		}
	}
	if _, err := conn.Subscribe(ctx, channel, client.SubscribeOptions{After: *after, Handler: handler}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return cli.Explain(err)
	}
	select {
	case err := <-ended:
		return err
	case err := <-conn.Ended():
		return err
	case <-ctx.Done():
	}
	mu.Lock()
	done = true
	resume := last
	mu.Unlock()
	if resume != "" {
		fmt.Fprintf(stderr, "tether: stopped; resume with: tether tail %s --after %s\n", channel, resume)
	}
	return nil
}

// printMessage writes one message: "CURSOR DATA", or a JSON line.
func printMessage(w io.Writer, asJSON bool, ev client.Event) error {
	if asJSON {
		l := tailLine{Channel: ev.Channel, Cursor: ev.Cursor, Data: ev.Data}
		if !ev.Time.IsZero() {
			t := ev.Time
			l.Time = &t
		}
		return cli.JSONLine(w, l)
	}
	_, err := fmt.Fprintf(w, "%s\t%s\n", ev.Cursor, ev.Data)
	return err
}
