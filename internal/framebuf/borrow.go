package framebuf

// Borrow returns an empty buffer of at least n bytes from the pools, for
// a reader that assembles frames itself (internal/wsframe): it holds the
// buffer only while a frame is in, and gives it back with Return.
func Borrow(n int) *[]byte { return get(n) }

// Return gives back a buffer Borrow returned; its bytes are no longer the
// caller's.
func Return(p *[]byte) { put(p) }
