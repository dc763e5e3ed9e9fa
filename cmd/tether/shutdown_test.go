package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// transportClient is one long-lived client of any transport. follow reads
// channel after cursor until the server says it is going away (returning
// true) or ctx ends; it reports every message's cursor through got.
type transportClient func(ctx context.Context, p *proc, channel, after string, got func(cursor string)) (told bool, err error)

var transports = map[string]transportClient{
	"long-poll": followLongPoll,
	"sse":       followSSE,
	"websocket": followWS,
	"tcp":       followTCP,
}

// SIGTERM with 1,000 clients spread over the four transports: every one is
// told over its own transport, the process exits within its grace period,
// publishes in flight are either acknowledged and kept or refused, and every
// client resumes from its cursor on the restarted server to exactly the
// messages it missed.
func TestShutdownThousandClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 1,000 clients")
	}
	const perTransport = 250
	const grace = 10 * time.Second
	dir := t.TempDir()
	p := startBinary(t, dir, "--tcp-addr", "127.0.0.1:0", "--shutdown-grace", grace.String(), "--shutdown-spread", "2s")
	first := publishOne(t, p, "sd", `"before"`, "")

	type state struct {
		transport string
		cursor    atomic.Value // string
		told      atomic.Bool
		err       error
	}
	var clients []*state
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, follow := range transports {
		for i := 0; i < perTransport; i++ {
			s := &state{transport: name}
			s.cursor.Store("0")
			clients = append(clients, s)
			wg.Go(func() {
				told, err := follow(ctx, p, "sd", "0", func(c string) { s.cursor.Store(c) })
				s.told.Store(told)
				s.err = err
			})
		}
	}
	// Every client holds the first message and waits for more.
	waitFor(t, 60*time.Second, "1,000 clients connected and caught up", func() bool {
		for _, s := range clients {
			if s.cursor.Load() != first {
				return false
			}
		}
		return countConnections(p) == len(clients)
	})

	// Publishes go on during the shutdown, on another channel.
	var acked []string
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < 100000; i++ {
			key := fmt.Sprintf("k%d", i)
			if _, ok := tryPublish(p, "sd-pub", fmt.Sprint(i), key); !ok {
				return
			}
			acked = append(acked, fmt.Sprint(i))
		}
	}()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace + 10*time.Second):
		t.Fatalf("still running %v after SIGTERM (grace %v)", time.Since(start), grace)
	}
	took := time.Since(start)
	<-pubDone
	wg.Wait()
	t.Logf("exit %v after SIGTERM with %d clients; %d publishes acknowledged meanwhile", took, len(clients), len(acked))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	notTold := map[string]int{}
	for _, s := range clients {
		if !s.told.Load() {
			notTold[s.transport]++
			if notTold[s.transport] == 1 {
				t.Logf("%s client not told: %v", s.transport, s.err)
			}
		}
	}
	if len(notTold) > 0 {
		t.Fatalf("clients not told of the shutdown, by transport: %v", notTold)
	}

	// Restart; one more message; everyone resumes from its cursor.
	p2 := startBinary(t, dir, "--tcp-addr", "127.0.0.1:0")
	last := publishOne(t, p2, "sd", `"after"`, "")
	var resumed sync.WaitGroup
	var failures atomic.Int32
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	for _, s := range clients {
		resumed.Go(func() {
			var got []string
			cctx, ccancel := context.WithCancel(rctx)
			defer ccancel()
			from := s.cursor.Load().(string)
			transports[s.transport](cctx, p2, "sd", from, func(c string) {
				got = append(got, c)
				if c == last {
					ccancel()
				}
			})
			if len(got) != 1 || got[0] != last {
				if failures.Add(1) == 1 {
					t.Errorf("%s client resuming after %s got %v, want exactly [%s]", s.transport, from, got, last)
				}
			}
		})
	}
	resumed.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d clients did not resume to exactly the missed message", n)
	}
	// Every acknowledged publish survived the shutdown.
	kept := readAll(t, p2.base, "sd-pub")
	if len(kept) < len(acked) {
		t.Fatalf("%d publishes acknowledged, %d kept", len(acked), len(kept))
	}
	for i, a := range acked {
		if kept[i].data != a {
			t.Fatalf("publish %d: kept %s, acknowledged %s", i, kept[i].data, a)
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countConnections(p *proc) int {
	resp, err := http.Get(p.base + "/v1/connections")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var list struct{ Connections []json.RawMessage }
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return -1
	}
	return len(list.Connections)
}

func tryPublish(p *proc, channel, data, key string) (string, bool) {
	req, _ := http.NewRequest("POST", p.base+"/v1/channels/"+channel+"/messages", strings.NewReader(data))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var a struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&a) != nil {
		return "", false
	}
	return a.ID, true
}

func publishOne(t *testing.T, p *proc, channel, data, key string) string {
	t.Helper()
	id, ok := tryPublish(p, channel, data, key)
	if !ok {
		t.Fatalf("publish to %s failed", channel)
	}
	return id
}

func followLongPoll(ctx context.Context, p *proc, channel, after string, got func(string)) (bool, error) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/v1/channels/"+channel+"/messages?wait=60s&after="+after, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return false, fmt.Errorf("long-poll: %s", resp.Status)
		}
		var a struct {
			Messages []struct{ ID string }
			Next     string
			Reconn   *int64 `json:"reconnect_after_ms"`
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil {
			return false, err
		}
		for _, m := range a.Messages {
			got(m.ID)
		}
		after = a.Next
		if a.Reconn != nil {
			return true, nil
		}
	}
	return false, ctx.Err()
}

func followSSE(ctx context.Context, p *proc, channel, after string, got func(string)) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/v1/channels/"+channel+"/events", nil)
	req.Header.Set("Last-Event-ID", after)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			got(strings.TrimPrefix(line, "id: "))
		case line == "event: shutdown":
			event = "shutdown"
		case line == "" && event == "shutdown":
			return true, nil
		}
	}
	return false, cmpErr(sc.Err(), ctx)
}

// frameClient speaks the framed protocol over send/recv.
func frameLoop(ctx context.Context, channel, after string, got func(string), send func(any) error, recv func() ([]byte, error)) (bool, error) {
	if err := send(map[string]any{"id": "s", "type": "subscribe", "channel": channel, "after": after}); err != nil {
		return false, err
	}
	for {
		b, err := recv()
		if err != nil {
			return false, cmpErr(err, ctx)
		}
		var f struct{ Type, ID, Cursor, Code string }
		if err := json.Unmarshal(b, &f); err != nil {
			return false, err
		}
		switch f.Type {
		case "message":
			got(f.Cursor)
		case "ping":
			send(map[string]any{"type": "pong", "id": f.ID})
		case "shutdown":
			send(map[string]any{"type": "bye"})
			return true, nil
		case "error":
			return false, fmt.Errorf("error frame %s", b)
		}
	}
}

func followWS(ctx context.Context, p *proc, channel, after string, got func(string)) (bool, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.base, "http")+"/v1/ws", nil)
	if err != nil {
		return false, err
	}
	defer c.CloseNow()
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return c.Write(ctx, websocket.MessageText, b)
	}
	recv := func() ([]byte, error) { _, b, err := c.Read(ctx); return b, err }
	told, err := frameLoop(ctx, channel, after, got, send, recv)
	if told {
		c.Close(websocket.StatusGoingAway, "bye")
	}
	return told, err
}

func followTCP(ctx context.Context, p *proc, channel, after string, got func(string)) (bool, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.tcpAddr)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	var wmu sync.Mutex
	send := func(v any) error {
		b, _ := json.Marshal(v)
		wmu.Lock()
		defer wmu.Unlock()
		_, err := nc.Write(append(b, '\n'))
		return err
	}
	br := bufio.NewReader(nc)
	recv := func() ([]byte, error) { return br.ReadBytes('\n') }
	return frameLoop(ctx, channel, after, got, send, recv)
}

// cmpErr prefers the context's error: a read fails because we cancelled.
func cmpErr(err error, ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
