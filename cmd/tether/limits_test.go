package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssOf is the resident set of process pid, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// wsDial opens a WebSocket on the binary by hand.
func wsDial(t *testing.T, base string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	io.WriteString(nc, "GET /v1/ws HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	return nc
}

// TestStalledOversizeRSS: 300 WebSocket connections that each send a
// header claiming 2^40 bytes, then 1 MiB + 2 bytes, then nothing, are all
// ended at once and leave the server's RSS within 10% of what it was
// (before the header check: 35 to 854 MB, and the connections stayed).
func TestStalledOversizeRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("300 connections")
	}
	p := startBinary(t, t.TempDir())
	// The baseline: the server after as many ordinary connections came and
	// went, so that what is compared is what the oversize frames leave.
	for range 300 {
		wsDial(t, p.base).Close()
	}
	waitFor(t, 10*time.Second, "the warm-up connections to end", func() bool { return countConnections(p) == 0 })
	base := rssOf(t, p.cmd.Process.Pid)
	hdr := []byte{0x82, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<40)
	hdr = append(hdr, 1, 2, 3, 4)
	payload := make([]byte, 1<<20+2)
	start := time.Now()
	var wg sync.WaitGroup
	for range 300 {
		nc := wsDial(t, p.base)
		wg.Go(func() {
			nc.Write(hdr)
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			nc.Write(payload)
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "every oversize connection to end", func() bool { return countConnections(p) == 0 })
	took := time.Since(start)
	after := rssOf(t, p.cmd.Process.Pid)
	t.Logf("300 stalled oversize connections ended within %v; RSS %.1f MB before, %.1f MB after", took, float64(base)/1e6, float64(after)/1e6)
	if after > base+base/10 {
		t.Fatalf("RSS %d after, %d before: more than 10%% above", after, base)
	}
}
