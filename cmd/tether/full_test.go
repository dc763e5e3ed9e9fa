package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-run/tether/internal/tmpfstest"
)

// post sends body and returns the status and the error code, if any.
func post(t *testing.T, url, body, key string) (int, string, string, time.Duration) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var a struct {
		ID    string
		Error struct{ Code string }
	}
	json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a.Error.Code, a.ID, took
}

func healthz(t *testing.T, p *proc) (int, string) {
	resp, err := http.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFullDisk: on a 32 MiB tmpfs, publishes and job creates are refused
// with 507 storage_full in under a second once the reserve is reached (TCP
// gets an error frame with that code), /healthz says degraded, reads go
// on, appends resume once the volume grows, and after a restart every
// acknowledged message is there once.
func TestFullDisk(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	p := startBinary(t, dir, "--data-reserve", fmt.Sprint(8<<20), "--tcp-addr", "127.0.0.1:0")
	payload := make([]byte, 4<<10)
	rand.Read(payload)
	body := `"` + hex.EncodeToString(payload) + `"` // 8 KiB that do not compress
	var mu sync.Mutex
	acked := map[string]string{} // key -> cursor
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i, refused := 0, 0; refused < 10; i++ {
				key := fmt.Sprintf("%d-%d", w, i)
				status, code, id, took := post(t, p.base+"/v1/channels/full/messages", body, key)
				switch {
				case status == http.StatusCreated:
					mu.Lock()
					acked[key] = id
					mu.Unlock()
				case status == http.StatusInsufficientStorage && code == "storage_full":
					refused++
					if took > time.Second {
						t.Errorf("a refusal took %v, want under 1s", took)
					}
				default:
					t.Errorf("publish: %d %s, want 201 or 507 storage_full", status, code)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d publishes acknowledged before the disk filled", len(acked))
	if status, b := healthz(t, p); status != http.StatusServiceUnavailable || !strings.Contains(b, `"degraded"`) || !strings.Contains(b, `"reason"`) {
		t.Fatalf("/healthz on a full disk: %d %s, want 503 degraded with a reason", status, b)
	}
	if status, code, _, took := post(t, p.base+"/v1/jobs", `{"type":"x"}`, ""); status != http.StatusInsufficientStorage || code != "storage_full" || took > time.Second {
		t.Fatalf("job create on a full disk: %d %s in %v, want 507 storage_full under 1s", status, code, took)
	}
	if got := readAll(t, p.base, "full"); len(got) != len(acked) {
		t.Fatalf("read %d messages on a full disk, want the %d acknowledged", len(got), len(acked))
	}
	// TCP: an error frame with the code.
	nc, err := net.Dial("tcp", p.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, `{"id":"p1","type":"publish","channel":"full","data":%s}`+"\n", body)
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("TCP publish on a full disk: %v", err)
		}
		if strings.Contains(line, `"id":"p1"`) {
			if !strings.Contains(line, `"code":"storage_full"`) {
				t.Fatalf("TCP publish on a full disk: %s, want an error frame storage_full", line)
			}
			break
		}
	}

	// Space returns: appends resume by themselves.
	tmpfstest.Resize(t, dir, "256m")
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, code, id, _ := post(t, p.base+"/v1/channels/full/messages", body, "after")
		if status == http.StatusCreated {
			acked["after"] = id
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after the volume grew: %d %s", status, code)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition against a deadline
	}
	if status, b := healthz(t, p); status != http.StatusOK {
		t.Fatalf("/healthz after space returned: %d %s", status, b)
	}

	// A restart keeps every acknowledged message, once.
	p.cmd.Process.Kill()
	<-p.done
	p = startBinary(t, dir)
	seen := map[string]int{}
	for _, m := range readAll(t, p.base, "full") {
		seen[m.id]++
	}
	for key, id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged %s (%s) read back %d times", key, id, seen[id])
		}
	}
}

// TestSecondServerSameDir: a second server on a data directory in use
// fails at once and says another process holds it.
func TestSecondServerSameDir(t *testing.T) {
	dir := t.TempDir()
	startBinary(t, dir)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil {
		t.Fatal("the second server started")
	}
	msg := string(out)
	if !strings.Contains(msg, "another tether process holds "+dir) || strings.Contains(msg, "resource temporarily unavailable") || strings.Count(msg, "tether:") > 1 {
		t.Fatalf("the second server said %q; want it to name the lock holder problem", msg)
	}
}
