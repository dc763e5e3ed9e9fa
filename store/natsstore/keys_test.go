package natsstore

import (
	"strings"
	"testing"

	"github.com/tether-run/tether/store"
)

// FuzzParseCursor checks that only canonical cursors parse, and that they
// format back to themselves: cursors come from clients.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0", "1", "42", "18446744073709551615", "18446744073709551616", "01", "-1", "+1", " 1", "1.5", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, ok := parseCursor(store.Cursor(s))
		if !ok {
			return
		}
		if got := formatCursor(seq); string(got) != s {
			t.Fatalf("parseCursor(%q) = %d, which formats as %q", s, seq, got)
		}
	})
}

// FuzzChannelSubject checks that every valid channel maps to exactly one
// subject token under the prefix and back to itself.
func FuzzChannelSubject(f *testing.F) {
	for _, s := range isolated {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ch string) {
		if !store.ValidChannel(ch) {
			return
		}
		subj := channelSubject("T.c.", ch)
		tok := strings.TrimPrefix(subj, "T.c.")
		if tok == "" || strings.ContainsAny(tok, ". \t\r\n*>") {
			t.Fatalf("channel %q: subject %q is not one plain token", ch, subj)
		}
		if got, ok := subjectChannel("T.c.", subj); !ok || got != ch {
			t.Fatalf("channel %q: subject %q maps back to %q, %v", ch, subj, got, ok)
		}
	})
}

// isolated are channel names a careless subject encoding could merge.
var isolated = []string{"iso", "iso.a", "iso:a", "iso_a", "iso-a", "ISO", "iso.a.b", "a..b", "a.", "x~y"}
