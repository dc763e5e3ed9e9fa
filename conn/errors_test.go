package conn

import (
	"errors"
	"fmt"
	"testing"
)

func TestReasonOfLifecycleSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{ErrIdleTimeout, ReasonIdleTimeout},
		{fmt.Errorf("ws: %w", ErrHeartbeatTimeout), ReasonHeartbeatTimeout},
		{ErrSlowConsumer, ReasonSlowConsumer},
		{ErrKicked, ReasonKicked},
		{ErrProtocolError, ReasonProtocolError},
		{gone(ReasonKicked, nil), ReasonKicked},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if !errors.Is(gone(ReasonSlowConsumer, nil), ErrSlowConsumer) {
		t.Error("a GoneError with ReasonSlowConsumer does not match ErrSlowConsumer")
	}
}
