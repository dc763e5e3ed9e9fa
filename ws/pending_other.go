//go:build !linux

package ws

import (
	"net"
	"syscall"
)

// socketOf: only Linux asks the kernel how much a socket holds (see
// pending_linux.go); elsewhere the reader arms readiness after each frame.
func socketOf(net.Conn) syscall.RawConn { return nil }

func unread(syscall.RawConn) bool { return false }
