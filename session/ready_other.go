//go:build !unix

package session

// peekable cannot peek here: it reports readable at once, so the reader
// waits in its read (a goroutine per connection, as before readiness).
func peekable(uintptr) bool { return true }
