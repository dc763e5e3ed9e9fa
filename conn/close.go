package conn

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrDiscardRefused: CloseConn could not discard (TCP_REPAIR needs
// CAP_NET_ADMIN, and Linux) and reset the connection instead.
var ErrDiscardRefused = errors.New("tether: discard refused (TCP_REPAIR needs CAP_NET_ADMIN on Linux); reset instead")

// gracefulDrain bounds how long CloseConn(CloseGraceful) waits for the
// peer's FIN after sending its own. A variable so tests can shorten it.
var gracefulDrain = time.Second

// CloseConn closes a raw connection in mode, for transports that own one.
// It returns once the socket is closed; CloseGraceful may take up to 1s.
//
//   - CloseGraceful: shutdown(SHUT_WR) (CloseWrite), so the kernel sends
//     what is queued and then FIN; then it reads and discards what the peer
//     still sends, until the peer's FIN or for at most 1s; then it closes.
//     The drain matters: Linux answers close(2) with RST, discarding what
//     is unsent, when received data is still unread (RFC 2525 §2.17;
//     tcp_close, "data_was_unread"). A peer that keeps sending past the
//     drain gets that RST. Connections without CloseWrite are just closed.
//   - CloseReset: SO_LINGER 0, then close(2): the kernel discards what is
//     unsent and sends RST (socket(7), tcp_disconnect).
//   - CloseDiscard: TCP_REPAIR on, then close(2): in repair mode the
//     kernel tears the socket down silently, sending neither FIN nor RST
//     (tcp_disconnect, as CRIU uses it). The peer sees nothing until its
//     own timeouts, or until it sends and our kernel, which no longer knows
//     the connection, answers RST. TCP_REPAIR needs CAP_NET_ADMIN; without
//     it CloseConn resets instead and returns an error wrapping
//     ErrDiscardRefused.
//
// Wrappers that expose the raw connection with NetConn (tls.Conn, Listen's
// connections) are unwrapped for reset and discard. Another goroutine may
// be blocked in Read or Write on c: it gets an error.
func CloseConn(c net.Conn, mode CloseMode) error {
	switch mode {
	case CloseGraceful:
		return closeGraceful(c)
	case CloseReset:
		return closeReset(c)
	case CloseDiscard:
		return closeDiscard(c)
	}
	return fmt.Errorf("%w %q", ErrBadCloseMode, mode)
}

func closeGraceful(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return c.Close()
	}
	if err := cw.CloseWrite(); err != nil {
		c.Close()
		return err
	}
	drain(c, gracefulDrain)
	return c.Close()
}

// drain reads and discards until EOF, an error, or d has passed.
func drain(c net.Conn, d time.Duration) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return
	}
	var buf [4096]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

func closeReset(c net.Conn) error {
	raw := innermost(c)
	l, ok := raw.(interface{ SetLinger(int) error })
	if !ok {
		c.Close()
		return fmt.Errorf("tether: cannot reset a %T (no SetLinger); closed it instead", raw)
	}
	err := l.SetLinger(0)
	return errors.Join(err, raw.Close())
}

func closeDiscard(c net.Conn) error {
	raw := innermost(c)
	err := fmt.Errorf("tether: a %T has no socket", raw)
	if sc, ok := raw.(syscall.Conn); ok {
		var rc syscall.RawConn
		if rc, err = sc.SyscallConn(); err == nil {
			if err = setRepair(rc); err == nil {
				return raw.Close()
			}
		}
	}
	return errors.Join(fmt.Errorf("%w: %w", ErrDiscardRefused, err), closeReset(c))
}

// innermost follows NetConn (tls.Conn, Listen's tcpConn) to the raw
// connection.
func innermost(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		inner := u.NetConn()
		if inner == nil || inner == c {
			return c
		}
		c = inner
	}
}
