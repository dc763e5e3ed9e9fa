package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's HZ (proc(5),
// sysconf(_SC_CLK_TCK)). The figures are therefore 10 ms grains.
const userHZ = 100

// pidCPU returns the user plus system CPU time pid has used so far,
// every thread included (live or ended), from fields 14 and 15 of
// /proc/<pid>/stat; ok is false when the process is gone.
func pidCPU(pid int) (d time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime from the text of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After ')': field 3 (state) is f[0], so field n is f[n-3].
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[14-3], 10, 64)
	st, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / userHZ, true
}

// cpuSample is the CPU used so far by each process of a server's tree, by
// pid, and when it was read.
type cpuSample struct {
	at   time.Time
	pids map[int]time.Duration
}

// cpuNow samples the CPU time of the instance's process and of all its
// descendants (nginx's workers; tether, Centrifugo and node are one
// process each).
func (in *instance) cpuNow() cpuSample {
	s := cpuSample{at: time.Now(), pids: map[int]time.Duration{}}
	for _, pid := range processTree(in.pid) {
		if d, ok := pidCPU(pid); ok {
			s.pids[pid] = d
		}
	}
	return s
}

// since is the CPU the processes of s used between a and s: per process
// present in both samples, plus the whole of a process that started
// between them. A process that ended between them is not counted (none of
// the servers ends one mid-case; nginx's workers live as long as it does).
func (s cpuSample) since(a cpuSample) time.Duration {
	var d time.Duration
	for pid, t := range s.pids {
		d += t - a.pids[pid]
	}
	return d
}

// selfCPU is the harness process's own user plus system CPU time so far:
// its clients and publishers.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the CPU time every core of the machine has spent busy so
// far (user, nice, system, irq, softirq, steal: the first line of
// /proc/stat, in USER_HZ), whoever used it: with the server's and the
// harness's, it tells what the other processes on a shared machine took
// meanwhile. ok is false when /proc/stat cannot be read.
func machineCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (time.Duration, bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / userHZ, true
}
