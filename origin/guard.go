package origin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Error codes of refusals, stable like docs/api.md's.
const (
	// CodeForbiddenOrigin: a cross-origin request from an origin not in
	// --allowed-origins, or a state-changing cross-origin request a
	// browser sent without a preflight (a form post, a text/plain body).
	// HTTP 403.
	CodeForbiddenOrigin = "forbidden_origin"
	// CodeBadHost: the Host header is not in --allowed-hosts (DNS
	// rebinding). HTTP 421 Misdirected Request (RFC 9110 section 15.5.20).
	CodeBadHost = "bad_host"
)

// CORS answers.
const (
	// AllowedMethods are the methods a preflight may ask for.
	AllowedMethods = "GET, HEAD, POST, DELETE"
	// AllowedHeaders are the request headers a preflight may ask for.
	AllowedHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
	// ExposedHeaders are the response headers a page may read.
	ExposedHeaders = "Idempotent-Replayed, Retry-After, WWW-Authenticate"
	// PreflightMaxAge is how long a browser may cache a preflight, in
	// seconds (Chromium caps it at 7200).
	PreflightMaxAge = "600"
)

// LoopbackHosts are the Host values of a server reached on loopback. A
// server listening only on loopback should default --allowed-hosts to
// them: a DNS rebinding attack then fails, because the attacker's page
// sends its own domain as Host.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// Config configures a Guard.
type Config struct {
	// AllowedOrigins are the browser origins that may use the API
	// cross-origin (--allowed-origins; see NewMatcher). Empty means none:
	// only same-origin pages and non-browser clients.
	AllowedOrigins []string
	// AllowedHosts are the Host values accepted (--allowed-hosts): host
	// names or IP addresses, optionally with a port ("example.com:8080";
	// without a port any port matches), and "*.example.com" for any
	// subdomain. Empty means any Host.
	AllowedHosts []string
}

// Guard is the browser-facing middleware: Host check, CORS (preflight
// included) and CSRF refusal. It is immutable and safe for concurrent
// use.
type Guard struct {
	origins *Matcher
	hosts   []hostEntry
}

type hostEntry struct {
	host string // lower case; ".suffix" when wild
	wild bool
	port string // "" = any
}

// New validates cfg and returns a Guard.
func New(cfg Config) (*Guard, error) {
	m, err := NewMatcher(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	g := &Guard{origins: m}
	for _, h := range cfg.AllowedHosts {
		e, err := parseHost(strings.TrimSpace(h))
		if err != nil {
			return nil, fmt.Errorf("tether: allowed host %q: %w", h, err)
		}
		g.hosts = append(g.hosts, e)
	}
	return g, nil
}

func parseHost(s string) (hostEntry, error) {
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return hostEntry{}, fmt.Errorf("want a host name or address, optionally with :port")
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return hostEntry{}, err
	}
	e := hostEntry{host: strings.ToLower(host), port: port}
	if rest, ok := strings.CutPrefix(e.host, "*."); ok {
		if rest == "" {
			return hostEntry{}, fmt.Errorf("a wildcard needs a domain after it")
		}
		e.host, e.wild = "."+rest, true
	}
	if e.host == "" || strings.Contains(e.host, "*") {
		return hostEntry{}, fmt.Errorf("a wildcard may only be the first label")
	}
	return e, nil
}

// Origins is the origin matcher, for the WebSocket handshake
// (Matcher.AllowWebSocket).
func (g *Guard) Origins() *Matcher { return g.origins }

// HostAllowed reports whether a request's Host header is allowed.
func (g *Guard) HostAllowed(hostport string) bool {
	if len(g.hosts) == 0 {
		return true
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, e := range g.hosts {
		if e.port != "" && e.port != port {
			continue
		}
		if e.wild && strings.HasSuffix(host, e.host) && len(host) > len(e.host) || !e.wild && host == e.host {
			return true
		}
	}
	return false
}

// Handler wraps next: every request passes the Host check; every OPTIONS
// is answered here (204; a CORS preflight from an allowed origin gets the
// Access-Control-Allow-* headers, from another origin 403); a
// state-changing request that a browser sent cross-origin is refused
// unless its origin is allowed and the browser had to preflight it;
// responses to allowed origins carry Access-Control-Allow-Origin. Every
// response carries Vary: Origin, since it depends on it.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if !g.HostAllowed(r.Host) {
			refuse(w, http.StatusMisdirectedRequest, CodeBadHost,
				fmt.Sprintf("Host %q is not in --allowed-hosts", r.Host))
			return
		}
		origin := r.Header.Get("Origin")
		allowed := origin != "" && g.origins.Allowed(origin)
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", ExposedHeaders)
		}
		if r.Method == http.MethodOptions {
			g.options(w, r, origin, allowed)
			return
		}
		if msg := csrf(r, allowed); msg != "" {
			refuse(w, http.StatusForbidden, CodeForbiddenOrigin, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// options answers OPTIONS: a CORS preflight (it has
// Access-Control-Request-Method) or a plain OPTIONS (RFC 9110 section
// 9.3.7).
func (g *Guard) options(w http.ResponseWriter, r *http.Request, origin string, allowed bool) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		if !allowed && !SameOrigin(r) {
			refuse(w, http.StatusForbidden, CodeForbiddenOrigin,
				fmt.Sprintf("origin %q is not in --allowed-origins", origin))
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", AllowedMethods)
		h.Set("Access-Control-Allow-Headers", AllowedHeaders)
		h.Set("Access-Control-Max-Age", PreflightMaxAge)
	}
	h.Set("Allow", AllowedMethods+", OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}

// csrf returns why a request must not reach a handler, or "". Safe
// methods pass (they change nothing; CORS keeps their answers from
// pages that are not allowed). A state-changing request passes when it
// is not a browser's cross-origin request (no Origin, and Sec-Fetch-Site
// absent, "same-origin" or "none"), or when its origin is allowed AND
// the browser must have preflighted it: only then did the browser ask
// us first. A form post or a text/plain fetch is a "simple" request,
// sent without preflight (Fetch standard, CORS-safelisted request
// header), so it never publishes or creates a job cross-origin.
func csrf(r *http.Request, allowed bool) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return ""
	}
	origin := r.Header.Get("Origin")
	site := r.Header.Get("Sec-Fetch-Site")
	crossOrigin := origin != "" && !SameOrigin(r) || site == "cross-site" || site == "same-site"
	if !crossOrigin {
		return ""
	}
	if !allowed {
		if origin == "" {
			return "a cross-site request without an Origin header is refused"
		}
		return fmt.Sprintf("origin %q is not in --allowed-origins", origin)
	}
	if simple(r) {
		return "a cross-origin request a browser sends without preflight (form or text/plain body) is refused; send Content-Type: application/json"
	}
	return ""
}

// simple reports whether a browser could have sent r without a
// preflight: no Authorization header and a CORS-safelisted Content-Type
// (or none).
func simple(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" || r.Header.Get("Idempotency-Key") != "" {
		return false
	}
	ct := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Type")))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	switch ct {
	case "", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// refuse answers {"error": {"code", "message"}}, the shape of every
// tether error (docs/api.md, Errors).
func refuse(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
