package pebblestore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate gives f size bytes of disk blocks. fallocate(2) allocates them
// without writing, and, unlike written zeros, whatever the filesystem's
// compression; filesystems without it (EOPNOTSUPP) get zeros.
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return writeZeros(f, size)
	}
	return err
}
