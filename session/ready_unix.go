//go:build unix

package session

import "golang.org/x/sys/unix"

// peekable reports whether fd has something to read (bytes, EOF, an
// error) without taking it; false makes the runtime poller wait. poll(2)
// leaves a pending socket error (ECONNRESET, ETIMEDOUT) for the read to
// report, which a peeking recv would consume.
func peekable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}
