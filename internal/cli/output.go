package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Table writes rows under a header as aligned columns.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Fields writes name/value pairs as two aligned columns.
func Fields(w io.Writer, pairs [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// JSONLine writes v as one line of JSON.
func JSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Progress prints a line about something that may take a while, once it
// has taken longer than Delay, and then again whenever Update changes the
// line, at most every Every. Its methods may be called from any goroutine.
type Progress struct {
	w       io.Writer
	start   time.Time
	mu      sync.Mutex
	timer   *time.Timer // guarded by mu
	msg     string      // guarded by mu
	printed string      // guarded by mu; the last line printed
	last    time.Time   // guarded by mu; when it was printed
	done    bool        // guarded by mu
}

// Progress timings: the first line after Delay, repeats at most every
// Every.
const (
	Delay = time.Second
	Every = 5 * time.Second
)

// StartProgress begins a progress about msg, printed to w (stderr) only if
// Done is not called within Delay.
func StartProgress(w io.Writer, msg string) *Progress {
	p := &Progress{w: w, msg: msg, start: time.Now()}
	p.mu.Lock() // tick reads timer
	p.timer = time.AfterFunc(Delay, p.tick)
	p.mu.Unlock()
	return p
}

func (p *Progress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.printLocked()
	p.timer.Reset(Every)
}

func (p *Progress) printLocked() {
	line := p.msg
	if p.printed == line && time.Since(p.last) < Every {
		return
	}
	fmt.Fprintf(p.w, "tether: %s (%s)\n", line, time.Since(p.start).Round(time.Second))
	p.printed, p.last = line, time.Now()
}

// Update changes the line; once the first line was printed, a changed
// line is printed at once.
func (p *Progress) Update(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msg = msg
	if !p.done && p.printed != "" && p.printed != msg {
		p.printLocked()
	}
}

// Done ends the progress. It reports whether a line was printed (the
// caller may then say how it ended).
func (p *Progress) Done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer.Stop()
	p.done = true
	return p.printed != ""
}
