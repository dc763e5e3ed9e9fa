//go:build !linux

package conn

import (
	"errors"
	"syscall"
)

// setRepair fails: TCP_REPAIR is Linux-only, so discard falls back to reset.
func setRepair(syscall.RawConn) error {
	return errors.New("tether: TCP_REPAIR not supported on this system")
}
