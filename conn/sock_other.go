//go:build !linux

package conn

import (
	"errors"
	"syscall"
	"time"
)

// errNoTCPInfo makes Watch degrade to net/http's own cancellation
// (ReasonCanceled) on systems without Linux's TCP_INFO.
// haveTCPInfo is false: ConnContext stores nothing and Watch degrades.
const haveTCPInfo = false

var errNoTCPInfo = errors.New("tether: TCP_INFO not supported on this system")

func readSockInfo(syscall.RawConn) (sockInfo, error) { return sockInfo{}, errNoTCPInfo }

func readSockErr(syscall.RawConn) error { return nil }

// setUserTimeout is a no-op: TCP_USER_TIMEOUT is Linux-only.
func setUserTimeout(uintptr, time.Duration) error { return nil }

const (
	ipprotoTCP        = 6
	tcpUserTimeoutOpt = 18
)

func readStall(syscall.RawConn) (Stall, error) { return Stall{}, errNoTCPInfo }

func readHeard(syscall.RawConn) (time.Duration, time.Duration, error) { return 0, 0, errNoTCPInfo }

func sockIntOpt(syscall.RawConn, int, int) (int, error) { return 0, errNoTCPInfo }

func zeroWindowAborts() bool { return false }
