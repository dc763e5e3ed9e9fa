package auth

import (
	"net/http"
	"strings"
)

// TokenQueryParam is the query parameter carrying a token where a browser
// cannot set headers: EventSource and WebSocket.
const TokenQueryParam = "token"

// TokenProtocolPrefix marks the WebSocket subprotocol that carries a
// token: a browser's WebSocket cannot set headers, but it can offer
// subprotocols, new WebSocket(url, ["tether", TokenProtocolPrefix +
// token]), and a JWT is made of characters a subprotocol may hold (RFC
// 6455 section 4.1: a token of RFC 7230). The server answers with the
// subprotocol "tether", never this one, so the token stays out of the
// answer, out of the URL, and out of access logs.
const TokenProtocolPrefix = "tether.token."

// TokenFromRequest returns the token an HTTP request carries: the
// credentials of "Authorization: Bearer <token>" (the scheme is
// case-insensitive, RFC 9110 section 11.1), else a WebSocket subprotocol
// "tether.token.<token>" in Sec-WebSocket-Protocol, else the "token" query
// parameter, else "". A token in a URL can end up in access logs and
// browser history, so clients use it only where neither a header nor a
// subprotocol can be set (EventSource), with short-lived tokens.
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(cred)
		}
		return ""
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(p), TokenProtocolPrefix); ok {
				return tok
			}
		}
	}
	return r.URL.Query().Get(TokenQueryParam)
}

// VerifyRequest verifies the token r carries (TokenFromRequest).
func (v *Verifier) VerifyRequest(r *http.Request) (*Principal, error) {
	return v.Verify(TokenFromRequest(r))
}

// WWWAuthenticate is the header value to send with a 401 answer for err
// (RFC 6750 section 3), "" if err is not a 401 denial.
func WWWAuthenticate(err error) string {
	e, ok := AsError(err)
	if !ok || e.Status() != http.StatusUnauthorized {
		return ""
	}
	if TokenMissing(err) {
		return `Bearer realm="tether"`
	}
	return `Bearer realm="tether", error="invalid_token"`
}
