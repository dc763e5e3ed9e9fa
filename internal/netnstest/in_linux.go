package netnstest

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// In runs f on an OS thread moved into namespace ns. Sockets keep the
// namespace they were created in, so what f listens on or dials can then
// be used from any goroutine. The thread is never unlocked: it exits with
// the goroutine, so no other goroutine ever runs in the namespace.
func In(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(errors.New("setns"), err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
