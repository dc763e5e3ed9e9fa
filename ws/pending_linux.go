package ws

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOf returns the socket under c's wrappers (tls.Conn, conn.Listen's,
// a test's), which the kernel can be asked about, or nil.
func socketOf(c net.Conn) syscall.RawConn {
	for range 4 { // a few layers of wrapping, never a cycle
		if sc, ok := c.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// unread reports whether the socket's receive queue holds bytes (SIOCINQ,
// tcp(7)), so that the reader goes on with the next frame of a burst
// instead of arming readiness and waking at once: the frame reader reads
// exactly, never past the frame it reads.
func unread(rc syscall.RawConn) bool {
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}
