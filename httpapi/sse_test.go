package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
	"github.com/tether-run/tether/wire"
)

// TestSSEFormat: the bytes of each event on an SSE stream (docs/api.md),
// and the events SSE does not carry.
func TestSSEFormat(t *testing.T) {
	tests := []struct {
		ev   any
		want string
	}{
		{wire.Message{Type: wire.TypeMessage, Channel: "c", Cursor: "7", Data: []byte(`{"a":1}`), Time: time.Unix(1, 0)}, "id: 7\ndata: {\"a\":1}\n\n"},
		{wire.Gap{Type: wire.TypeGap, Channel: "c", After: "1", Earliest: "5"}, "event: gap\ndata: {\"after\":\"1\",\"earliest\":\"5\"}\n\n"},
		{wire.Ping{Type: wire.TypePing}, ": heartbeat\n\n"},
		{wire.Shutdown{Type: wire.TypeShutdown, ReconnectAfterMS: 1500}, "event: shutdown\ndata: {\"reconnect_after_ms\":1500}\n\n"},
		{wire.Reply{Type: wire.TypeReply, ID: "1", OK: true}, ""},
		{wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeSlowConsumer}, ""},
	}
	for _, tt := range tests {
		got := sseFormat{}.Encode(tt.ev)
		if string(got) != tt.want || (tt.want == "") != (got == nil) {
			t.Errorf("Encode(%T) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}

// TestPollPagesAsBefore: a long-poll answer encoded once per page is
// byte for byte what the API answered before (writeJSON of pollAnswer).
func TestPollPagesAsBefore(t *testing.T) {
	res := store.ReadResult{
		Messages: []store.Message{{ID: "3", Data: []byte(`"x"`), Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}},
		Next:     "3", Gap: true, Earliest: "3",
	}
	for _, r := range []store.ReadResult{res, {}} {
		got := string(pollPages{}.EncodePage("1", r))
		w := httptest.NewRecorder()
		writeJSON(w, 200, pollAnswer("1", r))
		if got != w.Body.String() {
			t.Errorf("EncodePage = %q, writeJSON = %q", got, w.Body.String())
		}
	}
}
