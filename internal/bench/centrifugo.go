package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// centrifugoAPIKey is the HTTP API key of bench/peers/centrifugo/config.json.
const centrifugoAPIKey = "tether-bench"

// centrifugoBin finds the centrifugo binary: on PATH, else where go
// install puts it (scripts/peers/centrifugo.sh install).
func centrifugoBin() (string, error) {
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	dir := os.Getenv("GOBIN")
	if dir == "" {
		dir = filepath.Join(filepath.SplitList(build.Default.GOPATH)[0], "bin")
	}
	p := filepath.Join(dir, "centrifugo")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// startCentrifugo runs Centrifugo with bench/peers/centrifugo/config.json
// through scripts/peers/centrifugo.sh, which execs it: its pid is the
// server's. It has no per-connection log at its info level, so, as for
// Nchan, its client count (the info API) stands for its departure
// reports.
func startCentrifugo(ctx context.Context, cfg *Config, pl place, dir string) (*instance, error) {
	script := filepath.Join(cfg.RepoDir, "scripts/peers/centrifugo.sh")
	port, err := freePort(pl.serverNS(), pl.host)
	if err != nil {
		return nil, err
	}
	cmd := nsCommand(pl.serverNS(), script, "start", pl.host, strconv.Itoa(port))
	cmd.Dir = dir
	in := &instance{sys: Centrifugo, addr: net.JoinHostPort(pl.host, strconv.Itoa(port)), admin: adminClient(pl)}
	in.warnings = &lineTail{}
	stop, err := startProcess(cmd, false, func(line []byte, _ time.Time) {
		if !bytes.Contains(line, []byte(`"level":"info"`)) && !bytes.Contains(line, []byte(`"level":"debug"`)) {
			in.warnings.add(line)
		}
	})
	if err != nil {
		return nil, err
	}
	in.pid, in.stop = cmd.Process.Pid, stop
	return in, nil
}

// centrifugoAPI POSTs one command of Centrifugo's HTTP server API
// (/api/<method>) and returns the answer's result, or its error.
func centrifugoAPI(ctx context.Context, c *http.Client, addr, method string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", centrifugoAPIKey)
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: centrifugo %s: %w", method, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("bench: centrifugo %s: %w", method, err)
	}
	// A command's error is in the body of a 200 answer.
	if res.StatusCode != 200 || bytes.HasPrefix(b, []byte(`{"error"`)) {
		return nil, fmt.Errorf("bench: centrifugo %s: %s %s", method, res.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// appendCentrifugoPublish appends to b the publish command of payload p
// to ch: p is plain ASCII, so it goes in a JSON string unescaped, as
// tether's does.
func appendCentrifugoPublish(b []byte, ch string, p []byte) []byte {
	b = append(b, `{"channel":`...)
	b = strconv.AppendQuote(b, ch)
	b = append(b, `,"data":"`...)
	b = append(b, p...)
	return append(b, `"}`...)
}

// centrifugoClients is the number of subscribers Centrifugo's channels API
// counts, over every channel: its hub's live count. Every client of the
// harness subscribes to exactly one channel, so it is the number of its
// clients. (The info API's num_clients and the Prometheus gauge are
// refreshed every few seconds: too late for the detection scenario.)
func centrifugoClients(ctx context.Context, in *instance) (int, error) {
	b, err := centrifugoAPI(ctx, in.admin, in.addr, "channels", []byte("{}"))
	if err != nil {
		return 0, err
	}
	var chs struct {
		Result struct {
			Channels map[string]struct {
				NumClients int `json:"num_clients"`
			} `json:"channels"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &chs); err != nil {
		return 0, fmt.Errorf("bench: centrifugo channels: %w", err)
	}
	n := 0
	for _, c := range chs.Result.Channels {
		n += c.NumClients
	}
	return n, nil
}

// centrifugoSubscribe runs Centrifugo's JSON client protocol handshake on
// a WebSocket: connect (anonymous), then subscribe to ch; it returns once
// both are answered.
func (s *wsSub) centrifugoSubscribe(ch string) error {
	if err := s.ws.writeText([]byte(`{"id":1,"connect":{}}`)); err != nil {
		return fmt.Errorf("bench: centrifugo connect: %w", err)
	}
	if err := s.until(func(f []byte) bool { return bytes.HasPrefix(f, []byte(`{"id":1,`)) }, `"connect"`); err != nil {
		return err
	}
	sub := append(append([]byte(`{"id":2,"subscribe":{"channel":`), strconv.Quote(ch)...), "}}"...)
	if err := s.ws.writeText(sub); err != nil {
		return fmt.Errorf("bench: centrifugo subscribe: %w", err)
	}
	return s.until(func(f []byte) bool { return bytes.HasPrefix(f, []byte(`{"id":2,`)) }, `"subscribe"`)
}

// centrifugoNext returns the next reply or push of a Centrifugo
// WebSocket: it sends several per WebSocket message, one JSON object a
// line. Each is valid until the next call.
func (s *wsSub) centrifugoNext() ([]byte, error) {
	for len(s.pending) == 0 {
		f, err := s.ws.read()
		if err != nil {
			return nil, err
		}
		s.pending = f
	}
	line := s.pending
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line, s.pending = line[:i], line[i+1:]
	} else {
		s.pending = nil
	}
	return line, nil
}

// centrifugoSSEPath is the path of a Centrifugo unidirectional SSE stream
// of ch: the connect command rides in the URL (cf_connect). lastID
// ("offset:epoch") recovers after that publication; fromStart recovers
// from the oldest publication of the history.
func centrifugoSSEPath(ch, lastID string, fromStart bool) (string, error) {
	sub := map[string]any{}
	switch {
	case lastID != "":
		off, epoch, ok := bytes.Cut([]byte(lastID), []byte(":"))
		n, err := strconv.ParseUint(string(off), 10, 64)
		if !ok || err != nil {
			return "", fmt.Errorf("bench: centrifugo event id %q", lastID)
		}
		sub = map[string]any{"recover": true, "offset": n, "epoch": string(epoch)}
	case fromStart:
		sub = map[string]any{"recover": true, "offset": 0, "epoch": ""}
	}
	b, err := json.Marshal(map[string]any{"subs": map[string]any{ch: sub}})
	if err != nil {
		return "", err
	}
	return "/connection/uni_sse?cf_connect=" + url.QueryEscape(string(b)), nil
}

// centrifugoSSE turns a Centrifugo unidirectional stream's events into
// messages: the connect event carries the recovered publications and the
// channel's epoch, each later event one publication ({"channel":...,
// "pub":{"data":...,"offset":N}}) or a ping ({}). A message's id is
// "offset:epoch", what centrifugoSSEPath resumes from.
type centrifugoSSE struct {
	epoch  string
	queue  []sseEvent // recovered publications not yet returned
	id     []byte     // reused for the id of a live publication
	joined bool       // the connect event was read
}

// next returns the next publication of s (valid until the next call).
func (cf *centrifugoSSE) next(s *sseStream) (sseEvent, error) {
	for {
		if len(cf.queue) > 0 {
			ev := cf.queue[0]
			cf.queue = cf.queue[1:]
			return ev, nil
		}
		ev, err := s.next()
		if err != nil {
			return ev, err
		}
		if !cf.joined {
			if err := cf.connect(ev.data); err != nil {
				return sseEvent{}, err
			}
			continue
		}
		if !bytes.Contains(ev.data, []byte(`"pub":`)) {
			continue // a ping
		}
		// The offset follows the data, whose payload holds no quote.
		i := bytes.LastIndex(ev.data, []byte(`"offset":`))
		if i < 0 {
			continue
		}
		j := i + len(`"offset":`)
		k := j
		for k < len(ev.data) && '0' <= ev.data[k] && ev.data[k] <= '9' {
			k++
		}
		cf.id = append(append(append(cf.id[:0], ev.data[j:k]...), ':'), cf.epoch...)
		return sseEvent{id: cf.id, data: ev.data}, nil
	}
}

// connect reads the connect event: the epoch and recovered publications
// of the one subscription.
func (cf *centrifugoSSE) connect(data []byte) error {
	var c struct {
		Connect *struct {
			Subs map[string]struct {
				Epoch        string `json:"epoch"`
				Publications []struct {
					Data   json.RawMessage `json:"data"`
					Offset uint64          `json:"offset"`
				} `json:"publications"`
			} `json:"subs"`
		} `json:"connect"`
	}
	if err := json.Unmarshal(data, &c); err != nil || c.Connect == nil {
		return fmt.Errorf("bench: centrifugo SSE: no connect event first: %.200s", data)
	}
	for _, sub := range c.Connect.Subs {
		cf.epoch = sub.Epoch
		for _, p := range sub.Publications {
			id := strconv.FormatUint(p.Offset, 10) + ":" + sub.Epoch
			cf.queue = append(cf.queue, sseEvent{id: []byte(id), data: p.Data})
		}
	}
	cf.joined = true
	return nil
}
