package conn

import "errors"

// ErrBadCloseMode: the CloseMode is none of CloseGraceful, CloseReset,
// CloseDiscard.
var ErrBadCloseMode = errors.New("tether: unknown close mode")

// CloseMode is how the server ends a connection.
type CloseMode string

const (
	// CloseGraceful flushes what is queued, then says goodbye the
	// transport's way (WebSocket close frame, or FIN after which the peer's
	// remaining bytes are drained for a bounded time).
	CloseGraceful CloseMode = "close"
	// CloseReset discards what is unsent and sends RST (SO_LINGER 0).
	CloseReset CloseMode = "reset"
	// CloseDiscard drops the connection without telling the peer: no FIN,
	// no RST (TCP_REPAIR where permitted, see CloseConn). The peer finds
	// out by its own timeouts, as if the server had vanished.
	CloseDiscard CloseMode = "discard"
)
