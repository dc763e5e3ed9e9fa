package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

type sseEvent struct{ event, id, data string }

func parseAll(in string) ([]sseEvent, error) {
	var out []sseEvent
	err := parseSSE(strings.NewReader(in), func() {}, func(event, id string, data []byte) error {
		out = append(out, sseEvent{event, id, string(data)})
		return nil
	})
	return out, err
}

func TestParseSSE(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEvent
	}{
		{"server stream", "retry: 2000\n\nid: 7\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: gap\ndata: {\"after\":\"2\",\"earliest\":\"5\"}\n\nevent: shutdown\ndata: {\"reconnect_after_ms\":1200}\n\n",
			[]sseEvent{{"", "7", `{"a":1}`}, {"gap", "", `{"after":"2","earliest":"5"}`}, {"shutdown", "", `{"reconnect_after_ms":1200}`}}},
		{"crlf and no space", "id:8\r\ndata:x\r\n\r\n", []sseEvent{{"", "8", "x"}}},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{{"", "", "a\nb"}}},
		{"empty data", "data:\n\n", []sseEvent{{"", "", ""}}},
		{"unterminated event is not emitted", "id: 9\ndata: x\n", nil},
		{"colon in value", "data: {\"t\":\"1:2\"}\n\n", []sseEvent{{"", "", `{"t":"1:2"}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll(tt.in)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v, want io.ErrUnexpectedEOF at the end", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("event %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseSSELongLine(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	got, _ := parseAll("data: " + long + "\n\n")
	if len(got) != 1 || got[0].data != long {
		t.Fatalf("a 100 KiB data line came back as %d events", len(got))
	}
}

func FuzzParseSSE(f *testing.F) {
	f.Add("id: 7\ndata: {\"a\":1}\n\n: heartbeat\n\nevent: gap\ndata: {}\n\n")
	f.Add("data:\r\n\r\n")
	f.Add(":\n")
	f.Fuzz(func(t *testing.T, in string) {
		evs, err := parseAll(in)
		if err == nil {
			t.Fatal("parseSSE returned nil")
		}
		if n := strings.Count(in, "\n"); len(evs) > n {
			t.Fatalf("%d events from %d lines", len(evs), n)
		}
	})
}
