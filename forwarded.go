package tether

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries, from the right,
// are looked at: past that many trusted proxies in a row the request keeps
// its peer's address.
const maxForwardedHops = 16

// trustedProxies are the reverse proxies (Config.TrustedProxies) whose
// X-Forwarded-For is believed. It is read-only after New, so safe for
// concurrent use.
type trustedProxies []netip.Prefix

// parseTrustedProxies parses addresses ("127.0.0.1", "::1") and CIDR
// prefixes ("10.0.0.0/8").
func parseTrustedProxies(list []string) (trustedProxies, error) {
	var tp trustedProxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			tp = append(tp, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("tether: trusted proxy %q: want an IP address or a CIDR prefix", s)
		}
		a = a.Unmap().WithZone("")
		tp = append(tp, netip.PrefixFrom(a, a.BitLen()))
	}
	return tp, nil
}

func (tp trustedProxies) trusts(a netip.Addr) bool {
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHost parses an address as it appears in RemoteAddr or in an
// X-Forwarded-For entry: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1",
// "[2001:db8::1]:80".
func parseHost(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// clientAddr returns the client's address of a request whose peer is
// remote and whose X-Forwarded-For header values are xff, and whether it
// differs from remote. Only a trusted peer's header is read; walking it
// from the right (each proxy appends the address it received the request
// from), the first address that is not a trusted proxy is the client. An
// entry that is not an address, or more than maxForwardedHops trusted ones,
// leave the peer's address: nothing reliable is known past them. When every
// entry is a trusted proxy, the leftmost is the client.
func (tp trustedProxies) clientAddr(remote string, xff []string) (string, bool) {
	peer, ok := parseHost(remote)
	if !ok || len(xff) == 0 || !tp.trusts(peer) {
		return remote, false
	}
	hops := 0
	var a netip.Addr
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			if hops == maxForwardedHops {
				return remote, false
			}
			hops++
			if a, ok = parseHost(entries[j]); !ok {
				return remote, false
			}
			if !tp.trusts(a) {
				return net.JoinHostPort(a.String(), "0"), true
			}
		}
	}
	return net.JoinHostPort(a.String(), "0"), true
}

// handler rewrites r.RemoteAddr to the client's address (port 0: the
// client's port is not known) for requests from a trusted proxy, before
// any route sees them.
func (tp trustedProxies) handler(next http.Handler) http.Handler {
	if len(tp) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr, ok := tp.clientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For")); ok {
			r.RemoteAddr = addr
		}
		next.ServeHTTP(w, r)
	})
}
