package pebblestore

import (
	"math"
	"strconv"
	"testing"

	"github.com/tether-run/tether/store"
)

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   store.Cursor
		seq  uint64
		isOK bool
	}{
		{store.Start, 0, true},
		{"1", 1, true},
		{"10", 10, true},
		{"18446744073709551615", math.MaxUint64, true},
		{"18446744073709551616", 0, false}, // MaxUint64 + 1
		{"99999999999999999999", 0, false},
		{"100000000000000000000", 0, false}, // 21 digits
		{"", 0, false},
		{"00", 0, false},
		{"01", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1a", 0, false},
		{"0x1", 0, false},
		{"1_000", 0, false},
		{"\x001", 0, false},
		{"١", 0, false}, // Arabic-Indic digit one
	}
	for _, tt := range tests {
		seq, ok := parseCursor(tt.in)
		if seq != tt.seq || ok != tt.isOK {
			t.Errorf("parseCursor(%q) = %d, %v; want %d, %v", tt.in, seq, ok, tt.seq, tt.isOK)
		}
	}
}

func TestFormatCursor(t *testing.T) {
	for _, seq := range []uint64{0, 1, 9, 10, 12345, math.MaxUint64} {
		c := formatCursor(seq)
		if got, ok := parseCursor(c); !ok || got != seq {
			t.Errorf("parseCursor(formatCursor(%d) = %q) = %d, %v; want %d, true", seq, c, got, ok, seq)
		}
	}
	if formatCursor(0) != store.Start {
		t.Errorf("formatCursor(0) = %q; want store.Start", formatCursor(0))
	}
}

// FuzzParseCursor checks that parseCursor accepts exactly the canonical
// decimal spellings: whatever it accepts formats back to the same string,
// and whatever it rejects is not one.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0", "1", "42", "007", "-0", "18446744073709551615", "18446744073709551616", "", " 1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, ok := parseCursor(store.Cursor(s))
		canonical := false
		if v, err := strconv.ParseUint(s, 10, 64); err == nil && strconv.FormatUint(v, 10) == s {
			canonical = true
		}
		if ok != canonical {
			t.Fatalf("parseCursor(%q) ok = %v; canonical decimal = %v", s, ok, canonical)
		}
		if ok && string(formatCursor(seq)) != s {
			t.Fatalf("parseCursor(%q) = %d, which formats as %q", s, seq, formatCursor(seq))
		}
	})
}
