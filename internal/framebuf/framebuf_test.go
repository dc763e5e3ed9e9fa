package framebuf

import (
	"bytes"
	"strings"
	"testing"
)

func TestBuffer(t *testing.T) {
	var f Buffer
	for _, n := range []int{0, 10, Idle, Idle + 1, 100 << 10, 3 << 20, 5} {
		f.Reset()
		want := bytes.Repeat([]byte{'a'}, n)
		if err := f.ReadLimited(bytes.NewReader(want), n+1); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Bytes(), want) {
			t.Fatalf("ReadLimited of %d bytes: got %d bytes", n, f.Len())
		}
		f.Reset()
		f.Write(want[:n/2])
		f.Write(want[n/2:])
		if !bytes.Equal(f.Bytes(), want) {
			t.Fatalf("Write of %d bytes: got %d bytes", n, f.Len())
		}
	}
	f.Reset()
	if f.borrowed != nil || cap(f.b) != Idle {
		t.Fatalf("after Reset: borrowed %v, cap %d; want none, %d", f.borrowed != nil, cap(f.b), Idle)
	}
	// The limit: ReadLimited stops at max bytes.
	if err := f.ReadLimited(strings.NewReader(strings.Repeat("x", 100)), 10); err != nil || f.Len() != 10 {
		t.Fatalf("ReadLimited(max 10): %d bytes, %v", f.Len(), err)
	}
}

func TestClass(t *testing.T) {
	for _, c := range []struct{ n, want int }{{1, 0}, {minClass, 0}, {minClass + 1, 1}, {2 * minClass, 1}, {2*minClass + 1, 2}, {1 << 20, 6}} {
		if got := class(c.n); got != c.want {
			t.Errorf("class(%d) = %d, want %d", c.n, got, c.want)
		}
		if minClass<<class(c.n) < c.n {
			t.Errorf("class(%d) holds only %d bytes", c.n, minClass<<class(c.n))
		}
	}
}
