//go:build unix

package httpapi

import "golang.org/x/sys/unix"

// canWatch: the socket can be polled (readable).
const canWatch = true

// readable polls the socket without waiting: bytes, the peer's FIN or a
// reset make it readable. poll(2) leaves a pending error (a reset) for
// the read that follows, where a peek would take it.
func readable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil && err != unix.EINTR || n > 0 && fds[0].Revents != 0
}
