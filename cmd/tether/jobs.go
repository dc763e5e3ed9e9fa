package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-run/tether/internal/cli"
)

const jobsUsage = `usage: tether jobs ls [--state S] [--limit N]
       tether jobs show ID
       tether jobs cancel ID

Lists, shows and cancels jobs (GET /v1/jobs, GET /v1/jobs/ID, POST /v1/jobs/ID/cancel).
A token sees and cancels its own jobs; an admin token, every job.
Each takes --server, --token and --json (tether jobs ls -h).
`

// job is the part of a job (docs/api.md, "Jobs") the tables show.
type job struct {
	ID              string    `json:"id"`
	Type            string    `json:"type"`
	State           string    `json:"state"`
	Attempt         int       `json:"attempt"`
	MaxAttempts     int       `json:"max_attempts"`
	Worker          string    `json:"worker"`
	Sub             string    `json:"sub"`
	Created         time.Time `json:"created"`
	CancelRequested bool      `json:"cancel_requested"`
	CancelReason    string    `json:"cancel_reason"`
}

// jobsCmd is tether jobs ls|show|cancel.
func jobsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stderr, jobsUsage)
		return nil
	}
	sub, rest, err := oneSubcommand(args, "ls", "show", "cancel")
	if err != nil {
		fmt.Fprint(stderr, jobsUsage)
		return err
	}
	var c cli.Common
	switch sub {
	case "ls":
		fs := newClientFlags("jobs ls", "jobs ls [flags]", "Lists jobs, newest first.", &c, stderr)
		state := fs.String("state", "", "only jobs in this `state` (queued, running, retrying, succeeded, failed, canceled)")
		limit := fs.Int("limit", 100, "at most this many jobs (1..1000)")
		if err := parseFlags(fs, rest, &c); err != nil {
			return err
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *state != "" {
			q.Set("state", *state)
		}
		return jobsList(ctx, api(c, stderr), "/v1/jobs?"+q.Encode(), c.JSON, stdout)
	case "show", "cancel":
		return jobsOne(ctx, sub, rest, stdout, stderr)
	}
	return nil
}

// jobsOne is tether jobs show ID and jobs cancel ID.
func jobsOne(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	var c cli.Common
	about := "Shows a job."
	if sub == "cancel" {
		about = "Cancels a job: a queued one at once, a running one through its worker's handler."
	}
	fs := newClientFlags("jobs "+sub, "jobs "+sub+" [flags] ID", about, &c, stderr)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.Args(pos, "ID"); err != nil {
		return err
	}
	if err := c.Resolve(fs); err != nil {
		return err
	}
	method, path := "GET", "/v1/jobs/"+url.PathEscape(pos[0])
	if sub == "cancel" {
		method, path = "POST", path+"/cancel"
	}
	var raw json.RawMessage
	if err := api(c, stderr).Do(ctx, method, path, nil, &raw); err != nil {
		return err
	}
	switch {
	case c.JSON:
		return writeCompact(stdout, raw)
	case sub == "cancel":
		return cancelOutcome(stdout, raw)
	}
	return showJob(stdout, raw)
}

func jobsList(ctx context.Context, a *cli.API, path string, asJSON bool, stdout io.Writer) error {
	var ans struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := a.Do(ctx, "GET", path, nil, &ans); err != nil {
		return err
	}
	if asJSON {
		return writeCompactAll(stdout, ans.Jobs)
	}
	rows := make([][]string, 0, len(ans.Jobs))
	for _, raw := range ans.Jobs {
		var j job
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("a job not as expected: %w", err)
		}
		rows = append(rows, []string{j.ID, cli.Printable(j.Type, 64), j.State,
			fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), orDash(cli.Printable(j.Worker, 64)), orDash(cli.Printable(j.Sub, 64)), ago(j.Created)})
	}
	return cli.Table(stdout, []string{"ID", "TYPE", "STATE", "ATTEMPT", "WORKER", "SUB", "CREATED"}, rows)
}

// jobFieldOrder is the order tether jobs show prints a job's fields in;
// fields not named follow, sorted.
var jobFieldOrder = []string{"id", "type", "state", "attempt", "max_attempts", "worker", "sub", "on_disconnect",
	"timeout", "created", "started", "lease_until", "retry_at", "ended", "cancel_requested", "cancel_reason",
	"progress", "result", "error", "payload", "channel", "cursor"}

// showJob prints every field of a job, one per line.
func showJob(w io.Writer, raw json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("the job is not a JSON object: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(jobFieldOrder, a), slices.Index(jobFieldOrder, b)
		if ia < 0 {
			ia = len(jobFieldOrder)
		}
		if ib < 0 {
			ib = len(jobFieldOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	pairs := make([][2]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, [2]string{cli.Printable(k, 64), jsonText(m[k])})
	}
	return cli.Fields(w, pairs)
}

// cancelOutcome says what a cancel did, from the job it answered.
func cancelOutcome(w io.Writer, raw json.RawMessage) error {
	var j job
	if err := json.Unmarshal(raw, &j); err != nil {
		return fmt.Errorf("the job is not as expected: %w", err)
	}
	var err error
	switch {
	case j.State == "canceled":
		_, err = fmt.Fprintf(w, "job %s: canceled (%s)\n", j.ID, cli.Printable(j.CancelReason, 64))
	case j.CancelRequested:
		_, err = fmt.Fprintf(w, "job %s: cancel requested; its worker %s is told, and the job ends canceled when the handler returns\n", j.ID, cli.Printable(j.Worker, 64))
	default:
		_, err = fmt.Fprintf(w, "job %s: already %s, nothing to cancel\n", j.ID, j.State)
	}
	return err
}

// jsonText is a JSON value for a human: a string without its quotes,
// anything else compact.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return cli.Printable(s, 1000)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return cli.Printable(string(v), 1000)
	}
	return cli.Printable(b.String(), 1000)
}

// writeCompactAll writes each JSON value on a line of its own (--json).
func writeCompactAll(w io.Writer, vs []json.RawMessage) error {
	for _, v := range vs {
		if err := writeCompact(w, v); err != nil {
			return err
		}
	}
	return nil
}

// writeCompact writes a JSON value on one line.
func writeCompact(w io.Writer, v json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
