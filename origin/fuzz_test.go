package origin

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzOriginAndHost feeds arbitrary Origin and Host headers to the
// matchers: they never panic, and whatever they allow is really under an
// allowed name.
func FuzzOriginAndHost(f *testing.F) {
	m, err := NewMatcher([]string{"https://app.example.com", "https://*.example.org", "http://localhost:5173"})
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(Config{AllowedHosts: []string{"tether.example", "*.example.org", "::1"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"https://app.example.com", "https://a.example.org:443", "null", "http://[::1]:80", "https://xexample.org", "[::1]:8080", "a.example.org."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m.Allowed(s) {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("allowed unparsable origin %q", s)
			}
			h := strings.ToLower(u.Hostname())
			if h != "app.example.com" && h != "localhost" && !strings.HasSuffix(h, ".example.org") {
				t.Fatalf("allowed origin %q with host %q", s, h)
			}
		}
		if g.HostAllowed(s) {
			h, _, err := splitHostPort(s)
			h = strings.TrimSuffix(strings.ToLower(h), ".")
			if err != nil || h != "tether.example" && h != "::1" && !strings.HasSuffix(h, ".example.org") {
				t.Fatalf("allowed Host %q", s)
			}
		}
	})
}
