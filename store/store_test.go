package store

import (
	"strings"
	"testing"
)

func TestValidChannel(t *testing.T) {
	for name, want := range map[string]bool{
		"a":                                  true,
		"news":                               true,
		"job.42:progress":                    true,
		"A-b_c.d:e":                          true,
		"0":                                  true,
		strings.Repeat("x", MaxChannelLen):   true,
		"":                                   false,
		strings.Repeat("x", MaxChannelLen+1): false,
		"-lead":                              false,
		".lead":                              false,
		"has space":                          false,
		"slash/name":                         false,
		"nul\x00":                            false,
		"ünï":                                false,
		"star*":                              false,
		"gt>":                                false,
	} {
		if got := ValidChannel(name); got != want {
			t.Errorf("ValidChannel(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzValidChannel checks that every accepted name is safe to put in a URL
// path segment, a NATS subject token list and a storage key unescaped.
func FuzzValidChannel(f *testing.F) {
	for _, s := range []string{"news", "job.1:x", "", "a/b", "\x00", "*", ">", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !ValidChannel(name) {
			return
		}
		if len(name) == 0 || len(name) > MaxChannelLen {
			t.Fatalf("accepted %d bytes", len(name))
		}
		if strings.ContainsAny(name, "/ \t\r\n\x00*>?#%&") {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if r > 0x7e {
				t.Fatalf("accepted non-ASCII %q", name)
			}
		}
	})
}
