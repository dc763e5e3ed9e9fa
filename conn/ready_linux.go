//go:build linux

package conn

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readyState is a Ready's registration in the process's epoll instance.
// Its events carry the Ready's id, never the descriptor: a descriptor
// closed without Stop leaves the instance by itself (its file is gone),
// and the number may come back as another connection's.
type readyState struct {
	id      uint64
	mu      sync.Mutex // guards added and stopped; held across epoll_ctl
	added   bool       // the socket is in the epoll instance
	stopped bool
}

// poller is the process's epoll instance, created at the first NewReady
// and kept: its descriptor is non-blocking and registered with the
// runtime's poller (os.NewFile), so the goroutine draining it waits like
// any network read. That goroutine runs while watches is not empty.
type poller struct {
	epfd int
	file *os.File
	rc   syscall.RawConn

	mu      sync.Mutex
	watches map[uint64]*Ready // guarded by mu
	next    uint64            // guarded by mu
	running bool              // a run goroutine owns the drain; guarded by mu
}

var (
	pollOnce sync.Once
	thePoll  *poller
	pollErr  error
)

func getPoller() (*poller, error) {
	pollOnce.Do(func() { thePoll, pollErr = newPoller() })
	return thePoll, pollErr
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "tether-ready-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{epfd: epfd, file: f, rc: rc, watches: make(map[uint64]*Ready)}, nil
}

func (r *Ready) init() error {
	p, err := getPoller()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	r.id = p.next
	p.watches[r.id] = r
	if !p.running {
		p.running = true
		p.file.SetReadDeadline(time.Time{}) // undo the last exit's kick
		go p.run()
	}
	return nil
}

// readyEvents: readable, the peer's FIN, and one report per Arm (EPOLLERR
// and EPOLLHUP are always reported). Level-triggered, so arming a socket
// that already holds bytes reports it at once.
const readyEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Arm asks for one call of fn once the socket is readable; at once if it
// already is. Call it again only after fn has started. It fails with
// ErrReadyStopped after Stop, and with net.ErrClosed once the connection
// is closed.
func (r *Ready) Arm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrReadyStopped
	}
	op := unix.EPOLL_CTL_MOD
	if !r.added {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: readyEvents, Fd: int32(uint32(r.id)), Pad: int32(uint32(r.id >> 32))}
	var cerr error
	// Control holds the descriptor open while epoll_ctl runs, so the
	// number cannot be another connection's by then.
	if err := r.rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(thePoll.epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("epoll_ctl", cerr)
	}
	r.added = true
	return nil
}

// Stop ends the watch: no call of fn starts after it returns (one started
// before may still be running). Safe before or after the connection is
// closed, and more than once.
func (r *Ready) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	if r.added {
		// A closed connection's descriptor has left the instance already;
		// Control then fails and touches nothing.
		r.rc.Control(func(fd uintptr) { unix.EpollCtl(thePoll.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
		r.added = false
	}
	r.mu.Unlock()

	p := thePoll
	p.mu.Lock()
	delete(p.watches, r.id)
	if len(p.watches) == 0 {
		p.file.SetReadDeadline(time.Now()) // the drain goroutine exits
	}
	p.mu.Unlock()
}

// run drains the epoll instance until nothing is watched, starting each
// ready watch's fn on its own goroutine.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil // nothing ready: wait for the runtime's poller
		})
		p.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if r := p.watches[id]; r != nil {
				go r.fn()
			}
		}
		if len(p.watches) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Kicked when the last watch stopped, and watched again since.
			p.mu.Lock()
			if len(p.watches) > 0 {
				p.file.SetReadDeadline(time.Time{})
			}
			p.mu.Unlock()
		case err != nil || werr != nil:
			// The instance is broken (it is never closed): keep the
			// watches' owners from waiting forever.
			p.mu.Lock()
			for _, r := range p.watches {
				go r.fn()
			}
			p.running = false
			p.mu.Unlock()
			return
		}
	}
}
