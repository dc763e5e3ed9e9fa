package origin

import (
	"net/http/httptest"
	"testing"
)

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{
		"https://app.example.com",
		"http://localhost:5173",
		"https://*.example.org",
		"static.example.net", // no scheme: https only
		"https://PORT.example:8443",
		"https://default.example:443", // the default port, written out
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://APP.example.com", true},
		{"https://app.example.com:443", true},
		{"http://app.example.com", false}, // scheme differs
		{"https://app.example.com:8443", false},
		{"https://evil-app.example.com", false},
		{"https://app.example.com.evil.com", false},
		{"http://localhost:5173", true},
		{"http://localhost:5174", false},
		{"http://localhost", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false}, // the wildcard needs a label
		{"https://xexample.org", false},
		{"https://static.example.net", true},
		{"http://static.example.net", false},
		{"https://port.example:8443", true},
		{"https://port.example", false},
		{"https://default.example", true},
		{"null", false},
		{"", false},
		{"https://app.example.com/path", false},
		{"file://", false},
		{"::::", false},
	}
	for _, c := range cases {
		if got := m.Allowed(c.origin); got != c.want {
			t.Errorf("Allowed(%q) = %v, want %v", c.origin, got, c.want)
		}
	}
	any, _ := NewMatcher([]string{"*"})
	if !any.Allowed("https://anything.example") || any.Empty() {
		t.Error(`"*" does not allow every origin`)
	}
	var none *Matcher
	if none.Allowed("https://a") || !none.Empty() {
		t.Error("nil Matcher allows")
	}
}

func TestMatcherRefusesBadPatterns(t *testing.T) {
	for _, p := range []string{
		"", "ftp://a.example", "https://a.example/path", "https://*", "https://a.*.example",
		"https://*example.com", "https://user@a.example", "https://a.example:port", "https://a.example:",
	} {
		if _, err := NewMatcher([]string{p}); err == nil {
			t.Errorf("NewMatcher(%q) = nil error, want refused", p)
		}
	}
}

func TestAllowWebSocket(t *testing.T) {
	m, _ := NewMatcher([]string{"https://app.example.com"})
	cases := []struct {
		origin, host string
		want         bool
	}{
		{"", "tether.example", true}, // not a browser
		{"https://tether.example", "tether.example", true},
		{"https://app.example.com", "tether.example", true},
		{"https://evil.example", "tether.example", false},
		{"null", "tether.example", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v1/ws", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if got := m.AllowWebSocket(r); got != c.want {
			t.Errorf("AllowWebSocket(origin %q, host %q) = %v, want %v", c.origin, c.host, got, c.want)
		}
	}
}
