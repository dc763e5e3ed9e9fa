package origin

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Matcher decides whether a browser Origin (RFC 6454: scheme://host[:port])
// is allowed. One Matcher, built from --allowed-origins, drives both CORS
// (Guard) and the WebSocket Origin check, so the two never disagree.
// It is immutable and safe for concurrent use.
type Matcher struct {
	any     bool
	entries []entry
}

type entry struct {
	scheme string // "http" or "https"
	host   string // lower case; for a wildcard the suffix ".example.com"
	wild   bool   // host was "*.suffix": one or more labels before suffix
	port   string // "" means the scheme's default port only
}

// NewMatcher parses allowed origins. Each entry is one of:
//
//	https://app.example.com       exactly that origin (default port)
//	http://localhost:5173         exactly that origin, that port
//	https://*.example.com         any subdomain of example.com at any depth, not example.com itself
//	app.example.com, *.example.com  no scheme: https only
//	*                             every origin
//
// Hosts compare case-insensitively; a port given must match exactly; no
// port means the scheme's default port. Paths, queries, user info and
// wildcards elsewhere are refused.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "*" {
			m.any = true
			continue
		}
		e, err := parseEntry(p)
		if err != nil {
			return nil, fmt.Errorf("tether: allowed origin %q: %w", p, err)
		}
		m.entries = append(m.entries, e)
	}
	return m, nil
}

func parseEntry(p string) (entry, error) {
	if p == "" {
		return entry{}, fmt.Errorf("empty")
	}
	if !strings.Contains(p, "://") {
		p = "https://" + p
	}
	scheme, rest, _ := strings.Cut(p, "://")
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return entry{}, fmt.Errorf("scheme %q: want http or https", scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/?#@") {
		return entry{}, fmt.Errorf("an origin has no path, query or user info")
	}
	e := entry{scheme: scheme}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return entry{}, err
	}
	if s, ok := strings.CutPrefix(host, "*."); ok {
		e.wild, host = true, "."+s
		if s == "" {
			return entry{}, fmt.Errorf("a wildcard needs a domain after it")
		}
	}
	if host == "" || strings.Contains(host, "*") {
		return entry{}, fmt.Errorf("a wildcard may only be the first label, as in *.example.com")
	}
	e.host, e.port = strings.ToLower(host), port
	if e.port == defaultPort(scheme) {
		e.port = ""
	}
	return e, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (host, port string, err error) {
	if net.ParseIP(s) != nil {
		return s, "", nil // a bare IPv6 address has colons but no port
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if p == "" {
			return "", "", fmt.Errorf("empty port")
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return "", "", fmt.Errorf("port %q is not a number", p)
			}
		}
		return h, p, nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s[1 : len(s)-1], "", nil
	}
	if strings.Contains(s, ":") {
		return "", "", fmt.Errorf("cannot split host and port of %q", s)
	}
	return s, "", nil
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// Allowed reports whether a request with this Origin header may use the
// API from a browser. "null" (sandboxed frames, file: pages) and
// anything unparsable are refused unless "*" is configured.
func (m *Matcher) Allowed(origin string) bool {
	if m == nil || origin == "" {
		return false
	}
	if m.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == defaultPort(scheme) {
		port = ""
	}
	for _, e := range m.entries {
		if e.scheme != scheme || e.port != port {
			continue
		}
		if e.wild && strings.HasSuffix(host, e.host) && len(host) > len(e.host) ||
			!e.wild && host == e.host {
			return true
		}
	}
	return false
}

// Empty reports whether no origin at all is allowed cross-origin.
func (m *Matcher) Empty() bool { return m == nil || !m.any && len(m.entries) == 0 }

// AllowWebSocket is the WebSocket Origin check (RFC 6455 section 10.2):
// a handshake with no Origin header (not a browser), from the server's
// own origin, or from an allowed origin may proceed. Browsers do not
// apply CORS to WebSocket, so without this check any page could open
// one in the user's name.
func (m *Matcher) AllowWebSocket(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || SameOrigin(r) || m.Allowed(origin)
}

// SameOrigin reports whether r carries an Origin header naming the host
// the request was sent to (as coder/websocket's check does: the scheme is
// not compared, since a TLS-terminating proxy hides it).
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
