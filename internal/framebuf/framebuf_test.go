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

// countWriter counts the writes it gets.
type countWriter struct {
	bytes.Buffer
	writes int
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestBatch(t *testing.T) {
	var w Batch
	var dst countWriter
	var want []byte
	for i := range 1000 { // grows past several size classes
		frame := bytes.Repeat([]byte{byte('a' + i%26)}, i%300)
		w.Write(frame)
		w.WriteByte('\n')
		want = append(append(want, frame...), '\n')
	}
	if w.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", w.Len(), len(want))
	}
	if err := w.Flush(&dst); err != nil {
		t.Fatal(err)
	}
	if dst.writes != 1 || !bytes.Equal(dst.Bytes(), want) {
		t.Fatalf("Flush: %d writes, %d bytes; want 1 write of %d bytes", dst.writes, dst.Len(), len(want))
	}
	if w.b != nil || w.Len() != 0 {
		t.Fatal("after Flush the batch still holds a buffer")
	}
	// Nothing pending: no write at all.
	if err := w.Flush(&dst); err != nil || dst.writes != 1 {
		t.Fatalf("empty Flush: %d writes, %v", dst.writes, err)
	}
}
