// Package tmpfstest gives a test a small filesystem of its own to fill:
// a tmpfs mounted on a temporary directory, resized at will, unmounted when
// the test ends. Tests of a full disk use it; mounting needs root, so
// without it they skip with a message.
package tmpfstest

import (
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size (mount's size option: "32m") on a new
// directory, unmounted when the test ends. It skips the test without root
// or when mounting fails.
func Mount(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Resize changes the size of the tmpfs Mount made at dir.
func Resize(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs %s: %v: %s", dir, err, out)
	}
}
