package session

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/tether-run/tether/conn"
)

func TestReasonOf(t *testing.T) {
	tests := []struct {
		err  error
		want conn.Reason
	}{
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, conn.ReasonReset},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}, conn.ReasonTimeout},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, conn.ReasonClosed},
		{fmt.Errorf("failed to read frame header: %w", io.EOF), conn.ReasonClosed},
		{io.ErrUnexpectedEOF, conn.ReasonClosed},
		{net.ErrClosed, ""},
		{errors.New("something else"), ""},
	}
	for _, tt := range tests {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
