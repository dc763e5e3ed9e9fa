package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the
	// last ')'. utime 250 and stime 50 ticks: 3 s.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 9 20 0 12 0 100 1000 10 18446744073709551615\n"
	if d, ok := parseStatCPU([]byte(line)); !ok || d != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s, true", d, ok)
	}
	for _, bad := range []string{"", "12 (x) S 1 2", "12 x S 1 2 3 4 5 6 7 8 9 10 11 12 13"} {
		if d, ok := parseStatCPU([]byte(bad)); ok {
			t.Errorf("parseStatCPU(%q) = %v, true; want false", bad, d)
		}
	}
}

// The CPU /proc/<pid>/stat gives for this process must match what
// getrusage says, within the stat file's 10 ms grain and the time between
// the two reads.
func TestPidCPU(t *testing.T) {
	burn := func(d time.Duration) {
		end := selfCPU() + d
		deadline := time.Now().Add(30 * time.Second)
		x := 0
		for selfCPU() < end && time.Now().Before(deadline) {
			for i := range 100000 {
				x += i
			}
		}
		_ = x
	}
	stat0, ok := pidCPU(os.Getpid())
	self0 := selfCPU()
	if !ok {
		t.Fatal("no /proc/self stat")
	}
	burn(300 * time.Millisecond)
	stat1, _ := pidCPU(os.Getpid())
	self1 := selfCPU()
	ds, dr := stat1-stat0, self1-self0
	if dr < 300*time.Millisecond {
		t.Fatalf("getrusage moved %v after burning 300ms", dr)
	}
	if diff := (ds - dr).Abs(); diff > 50*time.Millisecond {
		t.Errorf("/proc/<pid>/stat says %v, getrusage %v: %v apart", ds, dr, diff)
	}
	if _, ok := pidCPU(1 << 30); ok {
		t.Error("pidCPU of a pid that cannot exist: ok")
	}
}

func TestCPUSampleSince(t *testing.T) {
	a := cpuSample{pids: map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: time.Second}}
	// pid 3 ended (not counted), pid 4 started (counted whole).
	b := cpuSample{pids: map[int]time.Duration{1: 1500 * time.Millisecond, 2: 2 * time.Second, 4: 300 * time.Millisecond}}
	if got := b.since(a); got != 800*time.Millisecond {
		t.Errorf("since = %v, want 800ms", got)
	}
}

func TestParseMachineCPU(t *testing.T) {
	// user 100, nice 10, system 50, idle 1000, iowait 20, irq 5, softirq 15,
	// steal 20 ticks: 200 busy, 2 s.
	text := "cpu  100 10 50 1000 20 5 15 20 0 0\ncpu0 50 5 25 500 10 2 8 10 0 0\n"
	if d, ok := parseMachineCPU([]byte(text)); !ok || d != 2*time.Second {
		t.Errorf("parseMachineCPU = %v, %v; want 2s, true", d, ok)
	}
	if _, ok := parseMachineCPU([]byte("cpu0 1 2 3 4 5 6 7 8\n")); ok {
		t.Error("no aggregate cpu line: ok")
	}
	// The machine's busy time moves at least as much as this process's.
	m0, ok := machineCPU()
	s0 := selfCPU()
	if !ok {
		t.Fatal("no /proc/stat")
	}
	end, deadline := s0+200*time.Millisecond, time.Now().Add(30*time.Second)
	for x := 0; selfCPU() < end && time.Now().Before(deadline); x++ {
	}
	m1, _ := machineCPU()
	if dm, ds := m1-m0, selfCPU()-s0; dm+20*time.Millisecond < ds {
		t.Errorf("the machine was busy %v while this process alone used %v", dm, ds)
	}
}
