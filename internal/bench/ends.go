package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// wsCloseError is a WebSocket close frame from the server: its status code
// and reason (RFC 6455 §5.5.1, §7.4). It reads as io.EOF to errors.Is.
type wsCloseError struct {
	code   int // 0: the frame had no status code
	reason string
}

func (e *wsCloseError) Error() string {
	return fmt.Sprintf("websocket closed by the server: %d %s", e.code, e.reason)
}

// Is makes a close frame the end of the stream, as it was before the
// frame's code and reason were kept.
func (e *wsCloseError) Is(target error) bool { return target == io.EOF }

// parseClose reads a close frame's payload: a 2-byte status code, then a
// UTF-8 reason of at most 123 bytes (the payload of a control frame is at
// most 125 bytes; anything longer was already refused).
func parseClose(p []byte) *wsCloseError {
	if len(p) < 2 {
		return &wsCloseError{}
	}
	r := p[2:]
	if len(r) > 123 {
		r = r[:123]
	}
	return &wsCloseError{code: int(p[0])<<8 | int(p[1]), reason: strings.ToValidUTF8(string(r), "?")}
}

// heartbeatReason is the end reason with which sys says it ended a client
// for not answering its heartbeat, as the harness reads it: tether's
// reason label and log field, socket.io's disconnect reason, Centrifugo's
// close code 3012 ("no pong"). Nchan, as configured here, sends no
// heartbeat, so it has none.
func heartbeatReason(sys System) string {
	switch sys.kind() {
	case Tether:
		return "heartbeat-timeout"
	case SocketIO:
		return "ping timeout"
	case Centrifugo:
		return "3012 no pong"
	}
	return ""
}

// clientEnd names why a subscriber's feed ended, as the client saw it: the
// code and reason of the server's close frame, or the error's kind.
func clientEnd(err error) string {
	if ce, ok := errors.AsType[*wsCloseError](err); ok {
		return strings.TrimSpace(strconv.Itoa(ce.code) + " " + ce.reason)
	}
	s := err.Error()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case strings.Contains(s, "connection reset"):
		return "reset"
	case strings.Contains(s, "broken pipe"):
		return "broken pipe"
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// endTally counts subscribers' ends by reason; safe for concurrent use.
type endTally struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu
}

func (t *endTally) add(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]int{}
	}
	t.n[reason]++
}

func (t *endTally) counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.n)
}

// serverEnds is how many connections the server says it has ended so far,
// by reason: tether's tether_connection_ends_total (every transport; its
// "connection ended" log lines for a build without the metric), the
// disconnects socket.io's server logs. ok is false for Nchan and
// Centrifugo, which report no reason (at the log level they run with):
// their ends are counted by the clients.
func (in *instance) serverEnds(ctx context.Context) (ends map[string]int, ok bool, err error) {
	switch in.sys.kind() {
	case Tether:
		s, err := in.getText(ctx, "/metrics")
		if err != nil {
			return nil, false, err
		}
		if m, found := metricByLabel(s, "tether_connection_ends_total", "reason"); found {
			return m, true, nil
		}
		return in.ends.counts(), true, nil
	case SocketIO:
		return in.ends.counts(), true, nil
	}
	return nil, false, nil
}

// metricByLabel adds up the samples of a Prometheus counter by the value
// of one label; found says whether the metric was exposed at all (its
// HELP or TYPE line, or a sample).
func metricByLabel(text, name, label string) (m map[string]int, found bool) {
	m = map[string]int{}
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, "# TYPE "+name+" ") {
			found = true
			continue
		}
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		found = true
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			continue
		}
		key := ""
		for kv := range strings.SplitSeq(labels, ",") {
			if k, q, ok := strings.Cut(kv, "="); ok && k == label {
				key, _ = strconv.Unquote(q)
			}
		}
		m[key] += int(v)
	}
	return m, found
}

// diffEnds is after minus before, by reason, without the reasons that did
// not move.
func diffEnds(before, after map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

// formatEnds renders ends by reason, the most frequent first:
// "heartbeat-timeout 12, slow-consumer 3"; "" when there are none.
func formatEnds(ends map[string]int) string {
	keys := slices.Collect(maps.Keys(ends))
	slices.SortFunc(keys, func(a, b string) int {
		if ends[a] != ends[b] {
			return ends[b] - ends[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+strconv.Itoa(ends[k]))
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
