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

	tl := &tailer{stdout: stdout, stderr: stderr, asJSON: c.JSON, count: *count, last: *after, ended: make(chan error, 1)}
	if _, err := conn.Subscribe(ctx, channel, client.SubscribeOptions{After: *after, Handler: tl.handle}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return cli.Explain(err)
	}
	select {
	case err := <-tl.ended:
		return err
	case err := <-conn.Ended():
		return err
	case <-ctx.Done():
	}
	if resume := tl.stop(); resume != "" {
		fmt.Fprintf(stderr, "tether: stopped; resume with: tether tail %s --after %s\n", channel, resume)
	}
	return nil
}

// tailer prints a subscription's events. handle runs on the client's
// delivery goroutine; mu lets the interrupted command stop it between two
// lines and know the last cursor printed.
type tailer struct {
	stdout, stderr io.Writer
	asJSON         bool
	count          int        // stop after this many messages; 0: never
	ended          chan error // receives the one reason tail ends by itself

	mu      sync.Mutex
	printed int    // guarded by mu
	last    string // guarded by mu; the cursor of the last message printed
	done    bool   // guarded by mu; nothing more is printed
}

func (t *tailer) handle(ev client.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	var err error
	switch ev.Kind {
	case client.EventMessage:
		if err = printMessage(t.stdout, t.asJSON, ev); err != nil {
			break
		}
		t.printed++
		t.last = ev.Cursor
		if t.count > 0 && t.printed == t.count {
			t.endLocked(nil)
		}
	case client.EventGap:
		if t.asJSON {
			err = cli.JSONLine(t.stdout, tailLine{Channel: ev.Channel, Gap: true, After: ev.GapAfter, Earliest: ev.GapEarliest})
		} else {
			fmt.Fprintf(t.stderr, "tether: gap: retention removed messages after cursor %s; resuming at %s\n", ev.GapAfter, ev.GapEarliest)
		}
	case client.EventError:
		t.endLocked(cli.Explain(ev.Err))
	}
	if err != nil && !t.done {
		t.endLocked(fmt.Errorf("writing: %w", err))
	}
}

// endLocked ends tail with err; it is called once, since done is set.
func (t *tailer) endLocked(err error) {
	t.done = true
	t.ended <- err
}

// stop prints nothing more and returns the cursor to resume after.
func (t *tailer) stop() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	return t.last
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
