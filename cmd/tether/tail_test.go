package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer written by a process's stderr copier and
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tether tail, as its own process, follows a channel across a SIGKILL of
// the server and its restart on the same data directory and address: N
// messages published before the kill and M after come out exactly once
// each, in order, with no gap.
func TestTailSurvivesServerKill(t *testing.T) {
	const before, after = 25, 25
	dir := t.TempDir()
	srv := startBinary(t, dir)
	addr := strings.TrimPrefix(srv.base, "http://")
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tail := exec.CommandContext(ctx, bin, "tail", "--server", srv.base, "--after", "0", "chat")
	stdout, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	tail.Stderr = &stderr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tail.Process.Kill()
		tail.Wait()
	})
	lines := make(chan string, before+after+10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	var got []string
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended while waiting for %s; stderr:\n%s", what, stderr.String())
			}
			got = append(got, l)
			return l
		case <-time.After(60 * time.Second):
			t.Fatalf("no line from tail for %s within 60s; stderr:\n%s", what, stderr.String())
		}
		return ""
	}

	for i := range before {
		httpPost(t, srv.base, "/v1/channels/chat/messages", fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	for i := range before {
		next(fmt.Sprintf("message %d", i))
	}
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	killed := time.Now()
	// While the server is down, tail says so on stderr once a second has
	// passed (and the server stays down until it did).
	waitFor(t, 30*time.Second, "tail's progress line about reconnecting", func() bool {
		return strings.Contains(stderr.String(), "tether: reconnecting to "+srv.base) ||
			strings.Contains(stderr.String(), "tether: connection to "+srv.base+" lost")
	})

	srv2 := startBinary(t, dir, "--addr", addr) // the last --addr wins
	for i := before; i < before+after; i++ {
		httpPost(t, srv2.base, "/v1/channels/chat/messages", fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	httpPost(t, srv2.base, "/v1/channels/chat/messages", `"end"`, nil)
	for l := ""; !strings.HasSuffix(l, `"end"`); {
		l = next("the end marker")
	}
	t.Logf("tail printed the end marker %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))

	// Exactly N+M messages and the marker, in order: none twice, none
	// missing.
	if len(got) != before+after+1 {
		t.Fatalf("tail printed %d lines, want %d:\n%s", len(got), before+after+1, strings.Join(got, "\n"))
	}
	seen := map[string]bool{}
	for i, l := range got[:before+after] {
		cursor, data, ok := strings.Cut(l, "\t")
		if !ok || data != fmt.Sprintf(`{"i":%d}`, i) || seen[cursor] {
			t.Fatalf("line %d is %q, want a new cursor and {\"i\":%d}", i, l, i)
		}
		seen[cursor] = true
	}

	// Interrupted, it says where to resume.
	tail.Process.Signal(syscall.SIGINT)
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail after SIGINT: %v; stderr:\n%s", err, stderr.String())
	}
	// Wait returned: stderr is copied whole (its pipe is not ordered
	// with stdout's).
	if !strings.Contains(stderr.String(), "tether: reconnected to "+srv.base) {
		t.Errorf("tail did not say on stderr that it reconnected:\n%s", stderr.String())
	}
	last, _, _ := strings.Cut(got[len(got)-1], "\t")
	if want := "resume with: tether tail chat --after " + last; !strings.Contains(stderr.String(), want) {
		t.Fatalf("tail's stderr after SIGINT lacks %q:\n%s", want, stderr.String())
	}
}
