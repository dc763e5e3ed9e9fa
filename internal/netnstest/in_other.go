//go:build !linux

package netnstest

import "errors"

// In fails: network namespaces are Linux-only (Setup skips first).
func In(string, func() error) error {
	return errors.New("netnstest: network namespaces are Linux-only")
}
