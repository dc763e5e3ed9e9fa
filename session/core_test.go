package session

import (
	"strings"
	"testing"

	"github.com/tether-run/tether/registry"
)

// fakeExt is an Extension that claims types and serves nothing.
type fakeExt struct{ types []string }

func (x fakeExt) RequestTypes() []string               { return x.types }
func (fakeExt) Serve(*Session, string, string, []byte) {}
func (fakeExt) Ended(*Session, bool)                   {}

func TestNewRefuses(t *testing.T) {
	st := openCounting(t)
	reg, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		exts []Extension
		want string
	}{
		{name: "a core type", exts: []Extension{fakeExt{[]string{"publish"}}}, want: "claimed twice"},
		{name: "one type twice", exts: []Extension{fakeExt{[]string{"x"}}, fakeExt{[]string{"x"}}}, want: "claimed twice"},
		{name: "negative size", cfg: Config{QueueBytes: -1}, want: "negative"},
		{name: "ping interval", cfg: Config{PingInterval: 10e6}, want: "below 100ms"},
		{name: "timeout under interval", cfg: Config{PingInterval: 2e9, PingTimeout: 1e9}, want: "must exceed"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, st, reg, nil, Access{}, tt.exts...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(Config{}, nil, reg, nil, Access{}); err == nil {
		t.Error("New without a store: no error")
	}
	if _, err := New(Config{}, st, nil, nil, Access{}); err == nil {
		t.Error("New without a registry: no error")
	}
	c, err := New(Config{}, st, reg, nil, Access{}, fakeExt{[]string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Config(); got.MaxLag != DefaultMaxLag || got.QueueBytes != DefaultQueueBytes || got.PingTimeout != DefaultPingTimeout {
		t.Errorf("defaults not applied: %+v", got)
	}
}
