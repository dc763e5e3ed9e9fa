package pebblestore

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger routes Pebble's printf-style log into slog.
type pebbleLogger struct {
	l *slog.Logger
}

func (p pebbleLogger) logf(level slog.Level, format string, args []any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

// Infof goes to Debug: Pebble narrates every WAL, flush and compaction.
func (p pebbleLogger) Infof(format string, args ...any) { p.logf(slog.LevelDebug, format, args) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.logf(slog.LevelError, format, args) }

// Fatalf is called by Pebble on invariant violations and data corruption,
// and must not return. It panics rather than exiting so that the panic
// carries a stack and a test sees it as a failure.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("tether: pebblestore: pebble: " + msg)
}
