//go:build !unix

package httpapi

// canWatch: no peek here; long-polls and streams keep their goroutine.
const canWatch = false

func readable(uintptr) bool { return true }
