//go:build linux

package conn

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setRepair puts a TCP socket in repair mode (TCP_REPAIR, Linux 3.5+;
// needs CAP_NET_ADMIN in the socket's network namespace), in which close(2)
// sends nothing.
func setRepair(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
	}); err != nil {
		return err
	}
	return serr
}
