package tether

import (
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, bad := range []string{"", "nginx", "10.0.0.0/33", "1.2.3.4:80"} {
		if _, err := parseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("parseTrustedProxies(%q): no error", bad)
		}
	}
	if _, err := (Config{TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"}}).withDefaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := (Config{TrustedProxies: []string{"proxy"}}).withDefaults(); err == nil {
		t.Fatal("Config with a bad trusted proxy accepted")
	}
}

func TestClientAddr(t *testing.T) {
	tp, err := parseTrustedProxies([]string{"127.0.0.1", "10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	many := strings.Repeat("10.0.0.1,", maxForwardedHops) + "10.0.0.1"
	for _, c := range []struct {
		name, remote string
		xff          []string
		want         string
		rewritten    bool
	}{
		{"no header", "127.0.0.1:5000", nil, "127.0.0.1:5000", false},
		{"one proxy", "127.0.0.1:5000", []string{"203.0.113.7"}, "203.0.113.7:0", true},
		{"untrusted peer's header is ignored", "198.51.100.1:5000", []string{"203.0.113.7"}, "198.51.100.1:5000", false},
		{"a client cannot forge past the proxy", "127.0.0.1:5000", []string{"1.1.1.1, 203.0.113.7"}, "203.0.113.7:0", true},
		{"a chain of trusted proxies", "127.0.0.1:5000", []string{"203.0.113.7, 10.1.2.3", "10.9.9.9"}, "203.0.113.7:0", true},
		{"IPv6 client, IPv6 peer", "[::1]:5000", []string{"2001:db8::7"}, "[2001:db8::7]:0", true},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:5000", []string{"203.0.113.7"}, "203.0.113.7:0", true},
		{"entry with a port", "127.0.0.1:5000", []string{"203.0.113.7:4711"}, "203.0.113.7:0", true},
		{"bracketed IPv6 entry", "127.0.0.1:5000", []string{"[2001:db8::7]"}, "[2001:db8::7]:0", true},
		{"garbage ends the walk", "127.0.0.1:5000", []string{"203.0.113.7, unknown"}, "127.0.0.1:5000", false},
		{"empty entry ends the walk", "127.0.0.1:5000", []string{""}, "127.0.0.1:5000", false},
		{"all trusted: the leftmost", "127.0.0.1:5000", []string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2:0", true},
		{"too many hops", "127.0.0.1:5000", []string{many}, "127.0.0.1:5000", false},
		{"unparsable peer", "@", []string{"203.0.113.7"}, "@", false},
	} {
		got, rewritten := tp.clientAddr(c.remote, c.xff)
		if got != c.want || rewritten != c.rewritten {
			t.Errorf("%s: clientAddr(%q, %q) = %q, %v; want %q, %v", c.name, c.remote, c.xff, got, rewritten, c.want, c.rewritten)
		}
	}
	var none trustedProxies
	if got, ok := none.clientAddr("127.0.0.1:5000", []string{"203.0.113.7"}); ok || got != "127.0.0.1:5000" {
		t.Errorf("no trusted proxies: got %q, %v", got, ok)
	}
}

func FuzzClientAddr(f *testing.F) {
	tp, _ := parseTrustedProxies([]string{"127.0.0.0/8", "::1"})
	f.Add("127.0.0.1:1", "203.0.113.7, 10.0.0.1")
	f.Add("[::1]:1", "[2001:db8::1]:80,::1")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got, ok := tp.clientAddr(remote, []string{xff})
		if !ok {
			if got != remote {
				t.Fatalf("not rewritten, yet %q != %q", got, remote)
			}
			return
		}
		if _, ok := parseHost(got); !ok || !strings.HasSuffix(got, ":0") {
			t.Fatalf("rewritten to %q, not an address with port 0", got)
		}
	})
}
