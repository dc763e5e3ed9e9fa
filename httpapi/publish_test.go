package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/tether-run/tether/store"
)

// FuzzPublishResponse: the hand-written publish answer is byte for byte
// what encoding/json writes, for any cursor.
func FuzzPublishResponse(f *testing.F) {
	for _, id := range []string{"0000000001-0", "17", "a:b.c_d-e", `x"y`, `\`, "<&>", "\x01", "é", "\x7f", ""} {
		f.Add("chan-1", id)
	}
	f.Fuzz(func(t *testing.T, channel, id string) {
		if !store.ValidChannel(channel) {
			return
		}
		want, err := json.Marshal(publishResponse{Channel: channel, ID: store.Cursor(id)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if got := appendPublishResponse(nil, channel, store.Cursor(id)); string(got) != string(want) {
			t.Fatalf("appendPublishResponse(%q, %q) = %q, want %q", channel, id, got, want)
		}
	})
}

// BenchmarkDecodeMessage: a compact body, the common case, is validated in
// place; one with spaces is compacted into a copy.
func BenchmarkDecodeMessage(b *testing.B) {
	for name, body := range map[string]string{
		"compact": `"#S000000000001T1795310556123456789................................................................"`,
		"spaced":  `{"seq": 1, "text": "#S000000000001T1795310556123456789.................................."}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, e := decodeMessage([]byte(body)); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}
